"""Bar charts as self-contained SVG text (no plotting library, no script, no external file).

Every bar is a `<rect class="bar">` carrying its numbers as data attributes (`data-series`,
`data-category`, `data-value`) and a `<title>` tooltip, so a browser shows the value on hover and a
test reads exactly what was drawn. Text is XML-escaped: category names come from user data
(segment names, reasons).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

# One colour per series, in order (a colour-blind-safe palette: Okabe & Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
WIDTH = 720
BAR_SPAN = 26          # pixels per category along the category axis
LABEL_ROOM = 190       # room for category labels left of horizontal bars
PLOT_HEIGHT = 220      # height of the value axis of vertical bars
MARGIN = 14
LEGEND_ROW = 18
TICKS = 4


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float, ...]   # one per category; 0 draws no bar


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _bar(x: float, y: float, w: float, h: float, colour: str, series: str, category: str, value: float) -> str:
    label = escape(f"{category} · {series}: {_number(value)}")
    return (f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
            f'fill="{colour}" data-series="{escape(series)}" data-category="{escape(category)}" '
            f'data-value="{value:g}"><title>{label}</title></rect>')


def _legend(series: list[Series], top: float) -> tuple[list[str], float]:
    if len(series) < 2:
        return [], top
    parts, x, y = [], MARGIN, top
    for i, s in enumerate(series):
        width = 24 + 7 * len(s.name)
        if x + width > WIDTH - MARGIN:
            x, y = MARGIN, y + LEGEND_ROW
        parts.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{PALETTE[i % len(PALETTE)]}"/>'
                     f'<text x="{x + 16}" y="{y + 10}">{escape(s.name)}</text>')
        x += width
    return parts, y + LEGEND_ROW + 4


def _svg(title: str, height: float, parts: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
            f'width="{WIDTH}" height="{height:.0f}" viewBox="0 0 {WIDTH} {height:.0f}" '
            f'font-family="sans-serif" font-size="11">'
            f'<title>{escape(title)}</title>{"".join(parts)}</svg>')


def _scale_max(series: list[Series], stacked: bool) -> float:
    if stacked:
        totals = [sum(v) for v in zip(*(s.values for s in series))] if series else []
    else:
        totals = [v for s in series for v in s.values]
    return max([t for t in totals if t > 0], default=1.0)


def nice_top(value: float) -> tuple[float, float]:
    """(axis top, tick step) for values up to `value`: the step is 1, 2 or 5 times a power of ten,
    so the ticks read as round numbers."""
    raw = value / TICKS
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return step * math.ceil(value / step), step


def bar_chart(title: str, categories: list[str], series: list[Series], *, stacked: bool = False,
              horizontal: bool = False, unit: str = "") -> str:
    """Vertical (categories along x) or horizontal (categories down y) bars; several series are
    drawn side by side, or on top of each other with `stacked`."""
    for s in series:
        if len(s.values) != len(categories):
            raise ValueError(f"series {s.name!r} has {len(s.values)} values for {len(categories)} categories")
    top, step = nice_top(_scale_max(series, stacked))
    legend, y0 = _legend(series, MARGIN)
    parts = list(legend)
    lanes = 1 if stacked else max(len(series), 1)
    if horizontal:
        length = WIDTH - LABEL_ROOM - 2 * MARGIN - 60
        span = max(BAR_SPAN, 14 * lanes + 8)
        for c, category in enumerate(categories):
            y = y0 + c * span
            parts.append(f'<text x="{LABEL_ROOM}" y="{y + span / 2 + 4:.1f}" text-anchor="end">{escape(category)}</text>')
            offset = 0.0
            for i, s in enumerate(series):
                value = s.values[c]
                w = length * value / top
                lane_h = (span - 8) / lanes
                by = y + 4 + (0 if stacked else i * lane_h)
                if value > 0:
                    parts.append(_bar(LABEL_ROOM + MARGIN + offset, by, w, lane_h, PALETTE[i % len(PALETTE)],
                                      s.name, category, value))
                if stacked:
                    offset += w
                elif value > 0:
                    parts.append(f'<text x="{LABEL_ROOM + MARGIN + w + 4:.1f}" y="{by + lane_h / 2 + 4:.1f}">'
                                 f'{_number(value)}{escape(unit)}</text>')
            if stacked:
                total = sum(s.values[c] for s in series)
                parts.append(f'<text x="{LABEL_ROOM + MARGIN + offset + 4:.1f}" y="{y + span / 2 + 4:.1f}">'
                             f'{_number(total)}{escape(unit)}</text>')
        return _svg(title, y0 + len(categories) * span + MARGIN, parts)

    left = 70
    plot_w = WIDTH - left - MARGIN
    span = plot_w / max(len(categories), 1)
    base = y0 + 14 + PLOT_HEIGHT  # room above the tallest bar for its label
    for t in range(round(top / step) + 1):
        value = step * t
        y = base - PLOT_HEIGHT * value / top
        parts.append(f'<line x1="{left}" x2="{WIDTH - MARGIN}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_number(value)}{escape(unit)}</text>')
    for c, category in enumerate(categories):
        x = left + c * span
        bar_w = (span * 0.8) / lanes
        stacked_h = 0.0
        for i, s in enumerate(series):
            value = s.values[c]
            h = PLOT_HEIGHT * value / top
            if value > 0:
                bx = x + span * 0.1 + (0 if stacked else i * bar_w)
                by = base - h - (stacked_h if stacked else 0)
                parts.append(_bar(bx, by, bar_w, h, PALETTE[i % len(PALETTE)], s.name, category, value))
            if stacked:
                stacked_h += h
            elif value > 0 and lanes == 1:
                parts.append(f'<text x="{x + span / 2:.1f}" y="{base - h - 4:.1f}" text-anchor="middle">'
                             f'{_number(value)}</text>')
        if stacked and stacked_h > 0:
            total = sum(s.values[c] for s in series)
            parts.append(f'<text x="{x + span / 2:.1f}" y="{base - stacked_h - 4:.1f}" text-anchor="middle">'
                         f'{_number(total)}{escape(unit)}</text>')
        label_x = x + span / 2
        parts.append(f'<text x="{label_x:.1f}" y="{base + 14}" text-anchor="end" '
                     f'transform="rotate(-35 {label_x:.1f} {base + 14})">{escape(category)}</text>')
    return _svg(title, base + 80, parts)
