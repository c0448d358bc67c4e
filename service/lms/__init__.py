"""The LMS integration: webhooks out (an outbox delivered by the workers) and in, and LTI 1.3."""
