"""Events the LMS sends us (Standard Webhooks): its own domain, beside service.lms, because it
submits through service.submissions, which grading (and so service.lms) sits below."""
