"""Charts as inline SVG, drawn on the server: no JavaScript, a few kilobytes, works offline.

Every piece is a `Markup` template filled with `format`, which escapes what it is given, so
labels from people and files cannot inject markup. Colours come from CSS classes in the
dashboard's stylesheet (the Content-Security-Policy allows no inline styles). Each chart has
a title for screen readers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup

WIDTH = 360  # one SVG unit is one CSS pixel on a 360 px phone; wider screens scale it up
EMPTY = Markup('<p class="empty">No data yet.</p>')


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _svg(height: int, title: str, parts: list[Markup]) -> Markup:
    head = Markup(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}" '
        'preserveAspectRatio="xMinYMin meet"><title>{}</title>'
    ).format(WIDTH, height, title, title)
    return head + Markup("").join(parts) + Markup("</svg>")


def bar_chart(
    rows: Sequence[tuple[str, float]],
    title: str,
    value_label: Callable[[float], str] = _number,
    css: str = "bar",
) -> Markup:
    """Horizontal bars, one per row, the label above its bar (readable at 360 px).

    Args:
        rows: (label, value) pairs in the order to draw them.
        title: what the chart shows (its accessible name).
        value_label: how a value is written at the end of its bar.
        css: the CSS class of the bars.
    """
    if not rows:
        return EMPTY
    line, bar, gap = 15, 14, 9
    step = line + bar + gap
    largest = max((value for _, value in rows), default=0) or 1
    track = WIDTH - 60
    parts = []
    for index, (label, value) in enumerate(rows):
        top = index * step
        length = max(track * value / largest, 1 if value else 0)
        parts.append(
            Markup('<text class="label" x="0" y="{}">{}</text>').format(top + 11, _short(label, 52))
        )
        parts.append(
            Markup('<rect class="{}" x="0" y="{}" width="{:.1f}" height="{}" rx="2"/>').format(
                css, top + line, length, bar
            )
        )
        parts.append(
            Markup('<text class="value" x="{:.1f}" y="{}">{}</text>').format(
                length + 4, top + line + 11, value_label(value)
            )
        )
    return _svg(len(rows) * step, title, parts)


@dataclass(frozen=True)
class Series:
    """One named series of a column chart; `css` picks its colour."""

    name: str
    css: str
    values: Sequence[float]


def column_chart(labels: Sequence[str], series: Sequence[Series], title: str) -> Markup:
    """Grouped columns over a sequence of labels (days), with a legend and the largest value.

    Args:
        labels: one per column group, e.g. "11-03"; only a few are written under the axis.
        series: the values for each label, one list per series, all as long as `labels`.
        title: what the chart shows (its accessible name).
    """
    if not labels or not series:
        return EMPTY
    top, plot, axis, legend = 14, 120, 16, 18
    largest = max((max(s.values, default=0) for s in series), default=0) or 1
    slot = WIDTH / len(labels)
    width = max(slot * 0.8 / len(series), 1)
    parts = [
        Markup('<text class="value" x="0" y="10">max {}</text>').format(_number(largest)),
        Markup('<line class="axis" x1="0" x2="{}" y1="{}" y2="{}"/>').format(
            WIDTH, top + plot, top + plot
        ),
    ]
    for index, label in enumerate(labels):
        for number, item in enumerate(series):
            value = item.values[index]
            size = plot * value / largest
            parts.append(
                Markup(
                    '<rect class="{}" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}">'
                    "<title>{} {}: {}</title></rect>"
                ).format(
                    item.css,
                    index * slot + slot * 0.1 + number * width,
                    top + plot - size,
                    width,
                    size,
                    label,
                    item.name,
                    _number(value),
                )
            )
    for index in sorted({0, len(labels) // 2, len(labels) - 1}):
        anchor = "start" if index == 0 else "end" if index == len(labels) - 1 else "middle"
        x = 0 if index == 0 else WIDTH if anchor == "end" else index * slot + slot / 2
        parts.append(
            Markup('<text class="label" x="{:.1f}" y="{}" text-anchor="{}">{}</text>').format(
                x, top + plot + 12, anchor, labels[index]
            )
        )
    x = 0.0
    y = top + plot + axis + 4
    for item in series:
        parts.append(
            Markup('<rect class="{}" x="{:.1f}" y="{}" width="10" height="10"/>').format(
                item.css, x, y
            )
        )
        parts.append(
            Markup('<text class="label" x="{:.1f}" y="{}">{}</text>').format(
                x + 14, y + 9, item.name
            )
        )
        x += 24 + 7 * len(item.name)
    return _svg(top + plot + axis + legend, title, parts)
