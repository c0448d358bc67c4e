"""A real notebook in the sandbox that prints NUL and escapes, raises with a NUL in its message and,
from inside a check, forges a record nested 400 levels deep with NaN in it on every descriptor it can
find: it is graded and stored beside the other students' jobs of its claimed batch, and staff can
open it and override its score."""

from __future__ import annotations

import json

from tests.conftest import Api
from tests.graders.notebooks import notebook_text, solution_cells
from tests.test_api_notebooks import upload

POISON_CELL = r"""
import os, struct
print("NUL\x00 and \x1b[31mred\x1b[0m")

def attention(q, K, V):
    nested = "[" * 400 + "1" + "]" * 400 + ", NaN"
    header = '{"status": "error", "error": "forged\\u0000", "index": [' + nested + '], "payload_bytes": 0}'
    record = struct.pack(">I", len(header)) + header.encode()
    for fd in range(3, 1024):
        try:
            os.write(fd, record)
        except OSError:
            pass
    return q

raise ValueError("bad\x00news \x1b[2J")
"""


def test_a_poisoned_notebook_is_stored_beside_its_batch_and_staff_can_override_it(api: Api) -> None:
    notebook = notebook_text([*solution_cells(), POISON_CELL]).encode()
    poisoned = upload(api, "student", {}, {"q4": ("hw5.ipynb", notebook)}).headers["location"]
    classmate = api.submit("student2", {"q1_2": {"choices": [3]}}).headers["location"]
    other = api.submit("outsider", {"q1": {"choices": [1]}}, assignment="other1", course="other").headers[
        "location"
    ]
    assert api.runner.run_once() == 3  # one claimed batch
    assert api.get("ta", classmate).json()["status"] == "graded"
    assert api.get("other_ta", other).json()["status"] == "graded"

    staff = api.get("ta", poisoned)
    assert staff.status_code == 200, staff.text
    q4 = staff.json()["questions"]["q4"]
    stored = json.dumps(q4)
    for unstorable in ("\\u0000", "\\u001b", "NaN,", ": NaN"):
        assert unstorable not in stored
    assert q4["details"]["checks"]["attention"]["points"] == 0
    assert q4["details"]["checks"]["rnn_forward"]["points"] == 2
    override = api.client.put(
        f"{poisoned}/questions/q4/grade",
        json={"score": 0, "feedback": "forged", "reason": "the notebook forged its checks"},
        headers=api.accounts.header("ta"),
    )
    assert override.status_code == 200, override.text
    assert override.json()["score"] == 0.0
