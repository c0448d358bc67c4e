"""The geometry of a question's score histogram, drawn by the server as inline SVG.

Only numbers and labels are computed here; the statistics template writes the SVG elements, so
Jinja escapes every label and no markup is built from strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.dashboard.formatting import number
from service.grades.schemas import HistogramBin

WIDTH = 640
HEIGHT = 260
# Room for the count labels at the left and the score labels under the bars.
LEFT = 44
RIGHT = 12
TOP = 16
BOTTOM = 40
PLOT_WIDTH = WIDTH - LEFT - RIGHT
PLOT_HEIGHT = HEIGHT - TOP - BOTTOM


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    count: int
    # The bin's range as written under the bar (with an en dash), and in words for its <title>.
    label: str
    span: str
    title: str


@dataclass(frozen=True, slots=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True, slots=True)
class Histogram:
    width: int
    height: int
    left: int
    baseline: float
    bars: list[Bar]
    ticks: list[Tick]
    # The whole picture in words, for the role="img" element's aria-label.
    description: str


def histogram(question: str, bins: Sequence[HistogramBin]) -> Histogram:
    tallest = max((item.count for item in bins), default=0)
    scale = PLOT_HEIGHT / tallest if tallest else 0.0
    slot = PLOT_WIDTH / max(len(bins), 1)
    gap = min(4.0, slot * 0.1)
    baseline = TOP + PLOT_HEIGHT
    bars = []
    for index, item in enumerate(bins):
        last = index == len(bins) - 1
        label = f"{number(item.low)}–{number(item.high)}"
        # The last bin holds full marks: [low, high]; the others [low, high).
        span = f"{number(item.low)} to {number(item.high)}" + (" inclusive" if last else "")
        answers = "answer" if item.count == 1 else "answers"
        height = item.count * scale
        bars.append(
            Bar(
                x=round(LEFT + index * slot + gap / 2, 2),
                y=round(baseline - height, 2),
                width=round(slot - gap, 2),
                height=round(height, 2),
                count=item.count,
                label=label,
                span=span,
                title=f"{span} points: {item.count} {answers}",
            )
        )
    ticks = [Tick(y=baseline, label="0")]
    if tallest:
        ticks.append(Tick(y=float(TOP), label=str(tallest)))
    # In words: a screen reader may read a dash as "dash".
    parts = "; ".join(f"{bar.span}: {bar.count}" for bar in bars)
    description = f"Score histogram of {question}: answers per score range, {parts}"
    return Histogram(WIDTH, HEIGHT, LEFT, baseline, bars, ticks, description)
