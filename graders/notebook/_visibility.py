"""Public and hidden checks: what a student sees of a notebook's result before the hidden
checks' results are released (docs/authoring.md, "Public and hidden checks")."""

from __future__ import annotations

from collections.abc import Sequence

from graders._result import JSONValue, PublicView
from graders.notebook._compare import CheckOutcome
from graders.notebook.config import NotebookConfig


def public_view(outcomes: Sequence[CheckOutcome], cell_lines: Sequence[str]) -> PublicView | None:
    """The public checks' share of the result, or None when no check is hidden.

    The feedback holds the cells' lines (the student's own notebook), the public checks' lines
    and one line saying how many hidden checks there are and their points: nothing of how a hidden
    check did, and not how the run ended (a hidden check may be what stopped it)."""
    hidden = [outcome for outcome in outcomes if outcome.visibility == "hidden"]
    if not hidden:
        return None
    public = [outcome for outcome in outcomes if outcome.visibility != "hidden"]
    possible = sum(outcome.max_points for outcome in outcomes)
    earned = sum(outcome.points for outcome in public)
    share = sum(outcome.max_points for outcome in public)
    lines = [*cell_lines, *(outcome.line for outcome in public), _hidden_line(hidden)]
    # Rounded alike and clamped: float sums must not make the public score exceed its share.
    max_fraction = min(round(share / possible, 9), 1.0)
    fraction = min(round(earned / possible, 9), max_fraction)
    return PublicView(fraction, max_fraction, "\n".join(lines))


def _hidden_line(hidden: Sequence[CheckOutcome]) -> str:
    points = sum(outcome.max_points for outcome in hidden)
    unit = "point" if points == 1 else "points"
    if len(hidden) == 1:
        return (
            f"1 hidden check ({points:g} {unit}) is graded too; "
            "its result is shown when the grades are released."
        )
    return (
        f"{len(hidden)} hidden checks ({points:g} {unit}) are graded too; "
        "their results are shown when the grades are released."
    )


def with_visibility(entries: list[JSONValue], config: NotebookConfig) -> list[JSONValue]:
    """The public configuration's check entries with each check's visibility; a hidden check shows
    only its name and points (nothing of its inputs, thresholds or time limit)."""
    visibility = {check.name: check.visibility for check in config.checks}
    shown: list[JSONValue] = []
    for entry in entries:
        if not isinstance(entry, dict):
            shown.append(entry)
            continue
        name = entry.get("name")
        kind = visibility.get(name, "public") if isinstance(name, str) else "public"
        if kind == "hidden":
            shown.append({"name": name, "points": entry.get("points"), "visibility": "hidden"})
        else:
            shown.append({**entry, "visibility": kind})
    return shown
