"""The controller process: its ROUTER loop, submissions worker, SQLite journal, views and metrics."""
