"""Assignment policies per course: deadlines, the late rule, attempts, extensions, the release of grades."""
