"""Leaves shared by every process: errors, limits, failure reasons, digests, paths, logging, child processes."""
