"""autograde's web service and the orchestration of grading."""
