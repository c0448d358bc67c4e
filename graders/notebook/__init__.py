"""Jupyter notebooks run in the sandbox; the functions and the model they define are checked outside."""

from graders.notebook.config import (
    ClassifierCheck,
    DataFile,
    FunctionCheck,
    NamedMistake,
    NotebookAnswer,
    NotebookConfig,
)
from graders.notebook.grader import NotebookGrader, NotebookRejected, read_notebook

__all__ = [
    "ClassifierCheck",
    "DataFile",
    "FunctionCheck",
    "NamedMistake",
    "NotebookAnswer",
    "NotebookConfig",
    "NotebookGrader",
    "NotebookRejected",
    "read_notebook",
]
