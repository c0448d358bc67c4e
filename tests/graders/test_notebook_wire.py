"""The runner's wire format: one writer and one strict reader, shared by both sides of a run."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from graders.notebook import _calls, _runner, _wire
from graders.notebook._compare import load_tree
from graders.notebook._plan import CALLS_FILE, CALLS_MODULE, WIRE_FILE, WIRE_MODULE
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


def test_the_runner_loads_the_calls_file_the_grader_ships_bound_to_the_wire(tmp_path: Path) -> None:
    """Each kind of check's call comes as an input file too; its results are bounded by the wire
    format's limits, so the runner hands it the wire module it loaded."""
    assert _runner.CALLS_FILE == CALLS_FILE
    (tmp_path / CALLS_FILE).write_bytes(CALLS_MODULE.read_bytes())
    try:
        shipped = _runner.load_calls(tmp_path, _wire)
        assert set(shipped.CALLS) == {
            "function",
            "module",
            "gradient",
            "classifier",
            "regression",
            "sequence",
        }
        result = shipped.structured_result({"h": torch.ones(2)}, max_elements=10)
        assert load_tree(result.payload, result.layout)["h"].tolist() == [1.0, 1.0]
    finally:
        sys.modules.pop("autograde_calls", None)


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


LAYOUT = {"tuple": ["p0", {"dict": [["weight", "p1"], ["bias", {"list": ["p2"]}]]}]}


@pytest.mark.parametrize(
    "record",
    [
        _wire.Record("ok", payload=b"PK", layout=LAYOUT, mutated=("x", "layers.0.weight")),
        _wire.Record("ok", payload=b"PK", layout={"dict": []}),
        _wire.Record("error", error="raised", mutated=("dy",)),
    ],
)
def test_structured_records_read_back_as_themselves(record: _wire.Record) -> None:
    assert _wire.read_record(_wire.encode_record(record)) == record


def nested(depth: int) -> object:
    layout: object = "p0"
    for _ in range(depth):
        layout = {"tuple": [layout]}
    return layout


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (nested(_wire.MAX_LAYOUT_DEPTH + 1), "nested more than"),
        ({"list": [f"p{i}" for i in range(_wire.MAX_LAYOUT_PARTS + 1)]}, "more than"),
        ({"tuple": ["p0", "p0"]}, "named twice"),
        ({"dict": [["a", "p0"], ["a", "p1"]]}, "repeated key"),
        ({"dict": [["", "p0"]]}, "no key"),
        ({"tuple": ["x" * (_wire.MAX_NAME_CHARS + 1)]}, "too long a name"),
        ({"tuple": [""]}, "no name"),
        ({"set": ["p0"]}, "not a result layout"),
        ({"tuple": ["p0"], "list": ["p1"]}, "not a result layout"),
        ({"dict": [["a"]]}, "not a result layout"),
        ({"tuple": "p0"}, "not a result layout"),
        (3, "not a result layout"),
    ],
)
def test_layouts_out_of_bounds_are_refused(layout: object, message: str) -> None:
    assert _wire.layout_leaves(nested(_wire.MAX_LAYOUT_DEPTH)) == ["p0"]
    with pytest.raises(_wire.RecordError, match=message):
        _wire.read_record(_wire.encode_record(_wire.Record("ok", payload=b"PK", layout=layout)))


@pytest.mark.parametrize(
    "mutated",
    [["x"] * (_wire.MAX_LAYOUT_PARTS + 1), [""], ["x" * (_wire.MAX_NAME_CHARS + 1)], [3], "x"],
)
def test_mutated_must_be_a_short_list_of_names(mutated: object) -> None:
    header = json.dumps({"status": "ok", "payload_bytes": 0, "mutated": mutated}).encode()
    with pytest.raises(_wire.RecordError, match="`mutated`"):
        _wire.read_record(_wire.HEADER_LENGTH.pack(len(header)) + header)


def test_a_structured_result_written_by_the_runner_loads_back_part_by_part(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_calls, "WIRE", _wire)
    value = (torch.ones(2, 3), {"w": np.arange(4), "b": [torch.tensor(2.5)]})
    result = _calls.structured_result(value, max_elements=100)
    tree = load_tree(result.payload, _wire.read_record(_wire.encode_record(_wire.Record(
        "ok", payload=result.payload, layout=result.layout))).layout)  # fmt: skip
    assert isinstance(tree, tuple)
    np.testing.assert_array_equal(tree[0], np.ones((2, 3)))
    assert isinstance(tree[1], dict)
    np.testing.assert_array_equal(tree[1]["w"], np.arange(4.0))
    assert isinstance(tree[1]["b"], list)
    assert float(tree[1]["b"][0]) == 2.5
    with pytest.raises(TypeError, match="returned 6 values, more than the 4 expected"):
        _calls.structured_result((torch.ones(6), torch.ones(6)), max_elements=10)
    with pytest.raises(TypeError, match="keys are not short strings"):
        _calls.structured_result({1: torch.ones(1)}, max_elements=10)


def npz(save: Any, **arrays: Any) -> bytes:
    buffer = io.BytesIO()
    save(buffer, **arrays)
    return buffer.getvalue()


def test_load_tree_refuses_archives_that_do_not_match_their_layout() -> None:
    layout = {"tuple": ["p0", "p1"]}
    assert len(load_tree(npz(np.savez, p0=np.ones(1), p1=np.ones(2)), layout)) == 2  # type: ignore[arg-type]
    cases = [
        (npz(np.savez_compressed, p0=np.ones(1), p1=np.ones(2)), "compressed"),
        (npz(np.savez, p0=np.ones(1)), "exactly the parts"),
        (npz(np.savez, p0=np.ones(1), p1=np.ones(1), p2=np.ones(1)), "exactly the parts"),
        (npz(np.savez, p0=np.ones(1), p1=np.array(["text"])), "not a numeric array"),
        (b"not a zip", "not an .npz archive"),
    ]
    for payload, message in cases:
        with pytest.raises(ValueError, match=message):
            load_tree(payload, layout)
    pickled = npz(np.savez, p0=np.ones(1), p1=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        load_tree(pickled, layout)
