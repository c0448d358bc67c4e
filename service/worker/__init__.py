"""Executors: where grading runs. The local one uses processes on this machine."""
