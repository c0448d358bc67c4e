"""Instructor reference modules, imported from the source stored with an assignment version.

The source is trusted material (written by course staff, loaded by `autograde assignments load`),
never student input. Keeping it in the database lets any worker grade any version.
"""

from __future__ import annotations

import atexit
import importlib.util
import inspect
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from graders import ReferenceFunctions

# Reference code holds hidden tests and mistakes' feedback: it is written to a directory private to
# this process (0700, files 0600), never to a shared, guessable path other local users could read
# or plant files in. A forked worker makes its own.
_module_directories: dict[int, Path] = {}


class ReferenceModuleError(Exception):
    pass


@lru_cache(maxsize=64)
def load_reference_functions(source: str, content_hash: str) -> ReferenceFunctions:
    """The public functions and classes a reference module defines, keyed by name (cached per
    content). Classes are there for module checks: a `Reference...` torch.nn.Module is built
    from the question's keyword arguments like a function is called."""
    if not source.strip():
        return {}
    module_name = f"autograde_reference_{content_hash[:24]}"
    path = _module_directory() / f"{module_name}.py"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(source)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ReferenceModuleError(f"cannot import the reference module from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        sys.modules.pop(module_name, None)
        raise ReferenceModuleError(f"the reference module failed to import: {error!r}") from error
    functions: dict[str, Callable[..., Any]] = {
        name: value
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module_name
    }
    return functions


def _module_directory() -> Path:
    pid = os.getpid()
    directory = _module_directories.get(pid)
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="autograde-reference-"))  # mode 0700
        _module_directories[pid] = directory
        atexit.register(_remove_directory, pid, directory)
    return directory


def _remove_directory(pid: int, directory: Path) -> None:
    if os.getpid() == pid:  # not from a forked child that inherited the handler
        shutil.rmtree(directory, ignore_errors=True)
