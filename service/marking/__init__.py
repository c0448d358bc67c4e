"""Marking: people's grades on answers (manual queue, rubrics, overrides), the audit log, exports."""
