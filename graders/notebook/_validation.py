"""Stage 0 of notebook grading: is the upload a notebook that can be run at all."""

from __future__ import annotations

import warnings
from typing import Any

# What of nbformat's complaint the student is shown: its first line, which names the problem.
MAX_REJECTION_DETAIL_CHARS = 300


class NotebookRejected(ValueError):
    """The upload is not a notebook that can be run (its message is for the student)."""


def read_notebook(content: str, max_bytes: int) -> dict[str, Any]:
    """Parse and validate a notebook (nbformat 4); raises NotebookRejected saying what is wrong."""
    import nbformat

    if len(content.encode()) > max_bytes:
        raise NotebookRejected(f"The notebook is larger than {max_bytes} bytes.")
    with warnings.catch_warnings():
        # nbformat warns about fixable details (missing cell ids ...); only errors matter here.
        warnings.simplefilter("ignore")
        try:
            notebook = nbformat.reads(content, as_version=4)  # type: ignore[no-untyped-call]
        except Exception as error:
            raise NotebookRejected(f"The file is not a Jupyter notebook: {_first_line(error)}") from None
        try:
            nbformat.validate(notebook)
        except Exception as error:
            message = _first_line(error)
            raise NotebookRejected(f"The notebook does not follow the nbformat 4 schema: {message}") from None
    return dict(notebook)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:MAX_REJECTION_DETAIL_CHARS] if text else type(error).__name__
