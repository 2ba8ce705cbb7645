"""Running a DAG on another engine's cluster (Dask, Ray) instead of Bxthre3's own controller: docs/BACKENDS.md."""
