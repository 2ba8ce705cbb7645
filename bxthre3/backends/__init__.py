"""Running a DAG on someone else's cluster (Dask, later Ray) instead of Bxthre3's own controller: see docs/BACKENDS.md."""
