"""Running a DAG on another engine's cluster (Dask; Ray designed) instead of our own controller: docs/BACKENDS.md."""
