"""The public Python API: `Dag` (build a DAG in code), `Client` (submit, follow, fetch results) and
`LocalCluster` (an embedded loopback cluster). `bxthre3.Dag` and friends import these lazily."""
