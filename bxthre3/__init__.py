"""Bxthre3: pool spare devices into one cluster that runs DAGs of WebAssembly tasks."""

__version__ = "0.1.0"
