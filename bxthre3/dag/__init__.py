"""DAGs: the validated spec (pure), the YAML loader (files), the bundled examples and workload generators."""
