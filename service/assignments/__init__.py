"""Assignments: loading the instructor's material, versioning it, showing it without keys."""
