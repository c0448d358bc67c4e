from __future__ import annotations


class ExpressionError(ValueError):
    """An answer that cannot be read or evaluated; the message is for the student."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position  # 0-based character offset into the answer, where known


class ExpressionSyntaxError(ExpressionError):
    """The answer does not follow the grammar."""


class LimitExceeded(ExpressionError):
    """The answer is too long, too deep, too large or too expensive to evaluate."""
