"""Grade books: each student's latest graded submission per assignment, for export."""
