"""Per-user sliding-window limits counted in the database (submissions, formula previews)."""
