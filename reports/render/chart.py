"""The bar chart that opens the report: calls per bucket by type, as inline SVG (pure).

Stacked bars, one per bucket, in time order (right to left in Persian). Every label is escaped
here; the result is safe to insert into HTML as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from reports.context import BucketTotals
from reports.text import Formatter

# report.css pads the HTML label row by LEFT and RIGHT (5% and 1.667% of WIDTH): keep them in step.
WIDTH, HEIGHT = 960, 200
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 10, 4
# At most this many bucket labels under the bars: a full date needs about three bars' width at 31 days.
MAX_LABELS = 8
COLOURS = {"incoming": "#2e7d32", "outgoing": "#1565c0", "missed": "#c62828", "internal": "#757575"}


def _nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 x 10^n at or above `value` (an axis that reads well)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


@dataclass(frozen=True)
class Chart:
    """The bars as SVG, and the legend and bucket labels to lay out in HTML around them.

    Text inside SVG is not shaped by every renderer (WeasyPrint draws Persian letters unjoined), so
    only digits go in the SVG; words go in HTML, aligned with the plot by the same margins.
    """

    svg: str
    legend: tuple[tuple[str, str], ...]
    labels: tuple[str, ...]


def bar_chart(buckets: Sequence[BucketTotals], kinds: Sequence[str], fmt: Formatter) -> Chart:
    """A stacked bar chart of `kinds` counts per bucket (bars right to left in Persian)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    peak = max((sum(getattr(b.totals, k) for k in kinds) for b in buckets), default=0)
    top = _nice_ceiling(max(peak, 1))
    slot = plot_w / max(len(buckets), 1)
    bar = max(slot * 0.7, 1.0)
    label_every = max(1, -(-len(buckets) // MAX_LABELS))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart-bars" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(fmt.t("chart"))}">',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#999"/>',
    ]
    for fraction in (0.5, 1.0):
        y = TOP + plot_h * (1 - fraction)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="13">'
                     f'{escape(fmt.num(int(top * fraction)))}</text>')
    for position, item in enumerate(buckets):
        slot_index = len(buckets) - 1 - position if fmt.rtl else position
        x = LEFT + slot_index * slot + (slot - bar) / 2
        y = TOP + plot_h
        for kind in kinds:
            count = getattr(item.totals, kind)
            if not count:
                continue
            height = plot_h * count / top
            y -= height
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}" '
                         f'fill="{COLOURS[kind]}"><title>{escape(fmt.num(count))}</title></rect>')
    parts.append("</svg>")
    labels = tuple(item.label if position % label_every == 0 else "" for position, item in enumerate(buckets))
    legend = tuple((kind, fmt.t(f"kind.{kind}")) for kind in kinds)
    return Chart("".join(parts), legend, labels)
