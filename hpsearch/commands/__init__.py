"""The commands that are not analyses of a results directory: run, worker, check."""
