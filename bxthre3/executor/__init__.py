"""The executor: the parent-side handle a host drives, and the child process (`python -m bxthre3.executor`)."""
