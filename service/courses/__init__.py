"""Courses, users and their enrollments (student, ta, instructor)."""
