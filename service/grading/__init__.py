"""Grading orchestration: claim jobs, run the graders, store results under the lease."""
