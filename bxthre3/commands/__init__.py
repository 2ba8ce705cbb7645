"""Modules only the CLI process runs: config file, completion, conventions, systemd units, the embedded cluster."""
