"""LTI 1.3, the tool side: its own domain, beside service.lms, because a launch lands on pages that
read submissions, which grading (and so service.lms, the outbox) sits below."""
