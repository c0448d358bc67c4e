"""Submissions: accepting answers, queueing their grading, showing the results."""
