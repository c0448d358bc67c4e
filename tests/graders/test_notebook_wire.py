"""The runner's wire format: one writer and one strict reader, shared by both sides of a run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from graders.notebook import _wire
from graders.notebook._plan import WIRE_FILE, WIRE_MODULE
from graders.notebook._runner import WIRE_FILE as RUNNER_WIRE_FILE
from graders.notebook._runner import load_wire


@pytest.mark.parametrize(
    "record",
    [
        _wire.Record("ok", payload=b"\x93NUMPY" + bytes(range(256))),
        _wire.Record("ok"),
        _wire.Record("error", error='ValueError: "quoted" \\ and \u00e9 (in <cell 3>, line 2)'),
    ],
)
def test_every_record_the_writer_makes_reads_back_as_itself(record: _wire.Record) -> None:
    assert _wire.read_record(_wire.encode_record(record)) == record


def test_a_record_with_bytes_after_it_is_refused() -> None:
    data = _wire.encode_record(_wire.Record("ok", payload=b"abc"))
    with pytest.raises(ValueError, match="not exactly one record"):
        _wire.read_record(data + b"x")
    with pytest.raises(_wire.RecordCutShort):
        _wire.read_record(data[: _wire.HEADER_LENGTH.size + 3])


def test_a_header_longer_than_allowed_is_not_parsed() -> None:
    header = b'{"status": "ok", "payload_bytes": 0, "pad": "' + b"x" * _wire.MAX_HEADER_BYTES + b'"}'
    with pytest.raises(ValueError, match="not a result header"):
        _wire.read_record(_wire.HEADER_LENGTH.pack(len(header)) + header)


def test_check_requests_read_back() -> None:
    assert _wire.read_check_request(_wire.encode_check_request(3)) == 3
    with pytest.raises(TypeError):
        _wire.read_check_request(b'{"check": "3"}')


def test_the_runner_loads_the_wire_file_the_grader_ships(tmp_path: Path) -> None:
    assert RUNNER_WIRE_FILE == WIRE_FILE
    (tmp_path / WIRE_FILE).write_bytes(WIRE_MODULE.read_bytes())
    try:
        shipped = load_wire(tmp_path)
        record = shipped.Record("ok", payload=b"abc")
        assert _wire.read_record(shipped.encode_record(record)) == _wire.Record("ok", payload=b"abc")
    finally:
        sys.modules.pop("autograde_wire", None)


STANDALONE_WRITER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("wire", sys.argv[1])
wire = importlib.util.module_from_spec(spec)
sys.modules["wire"] = wire
spec.loader.exec_module(wire)
wire.write_record(1, wire.Record("error", error="raised in the sandbox"))
"""


def test_the_wire_module_runs_without_graders_or_site_packages() -> None:
    """The sandbox mounts neither `graders` nor a path to it: the runner loads the module by file,
    in an isolated interpreter (-I -S), and what it writes there is what the grader reads."""
    written = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", STANDALONE_WRITER, str(WIRE_MODULE)],
        capture_output=True,
        check=True,
        timeout=60,
        cwd=WIRE_MODULE.anchor,
    )
    assert _wire.read_record(written.stdout) == _wire.Record("error", error="raised in the sandbox")
