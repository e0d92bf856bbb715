"""Plots as inline SVG strings: readable without JavaScript, no plotting library needed.

Three kinds, all the report needs: a strip plot (every run of every system on one time axis,
the score marked), line plots (quality against time, with a target line) and horizontal bars.
Axes switch to a log scale when values span more than `LOG_SPAN` (published times range from
under a minute to days). Every mark has a <title>, so hovering shows its value.
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
LOG_SPAN = 30.0
FONT = 'font-family="sans-serif" font-size="11"'


class Axis:
    """Maps data values to pixels, linear or log10."""

    def __init__(self, values: list[float], start: float, end: float, log: bool | None = None,
                 include_zero: bool = False):
        finite = [v for v in values if v is not None and math.isfinite(v)]
        lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
        if log is None:
            log = lo > 0 and hi / lo > LOG_SPAN
        self.log = log and lo > 0
        if self.log:
            lo, hi = 10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi))
        else:
            if include_zero:
                lo, hi = min(lo, 0.0), max(hi, 0.0)
            if hi == lo:
                hi = lo + 1
            pad = (hi - lo) * 0.05
            lo, hi = (lo if include_zero and lo == 0 else lo - pad), hi + pad
        self.lo, self.hi, self.start, self.end = lo, hi, start, end

    def __call__(self, value: float) -> float:
        if self.log:
            frac = (math.log10(value) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            frac = (value - self.lo) / (self.hi - self.lo)
        return self.start + frac * (self.end - self.start)

    def ticks(self) -> list[float]:
        if self.log:
            return [10 ** e for e in range(round(math.log10(self.lo)), round(math.log10(self.hi)) + 1)]
        step = 10 ** math.floor(math.log10((self.hi - self.lo) / 4 or 1))
        for mult in (1, 2, 5, 10):
            if (self.hi - self.lo) / (step * mult) <= 6:
                step *= mult
                break
        first = math.ceil(self.lo / step) * step
        return [first + i * step for i in range(int((self.hi - first) / step) + 1)]


def _num(value: float) -> str:
    return f"{value:.4g}"


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" role="img" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'aria-label="{escape(label)}"><title>{escape(label)}</title>{"".join(body)}</svg>')


def _x_axis(axis: Axis, y: float, top: float, label: str) -> list[str]:
    parts = [f'<line x1="{axis.start}" y1="{y}" x2="{axis.end}" y2="{y}" stroke="#333"/>']
    for tick in axis.ticks():
        x = axis(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{y}" stroke="#ddd"/>'
                     f'<text x="{x:.1f}" y="{y + 14}" text-anchor="middle" {FONT}>{_num(tick)}</text>')
    parts.append(f'<text x="{(axis.start + axis.end) / 2}" y="{y + 30}" text-anchor="middle" '
                 f'{FONT}>{escape(label)}{" (log scale)" if axis.log else ""}</text>')
    return parts


def strip_plot(groups: list[tuple[str, list[float], float | None]], x_label: str,
               title: str) -> str:
    """One row per group: a dot per value, a bar at the group's score (None: no score)."""
    width, left, right, row = 760, 230, 20, 26
    height = 50 + row * len(groups)
    axis = Axis([v for _, values, _ in groups for v in values], left, width - right)
    body = _x_axis(axis, 10 + row * len(groups), 10, x_label)
    for i, (label, values, score) in enumerate(groups):
        y = 10 + row * i + row / 2
        color = PALETTE[i % len(PALETTE)]
        body.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end" {FONT}>{escape(label[:36])}</text>')
        for value in values:
            body.append(f'<circle class="run" cx="{axis(value):.1f}" cy="{y}" r="4" fill="{color}" '
                        f'fill-opacity="0.6"><title>{escape(label)}: {_num(value)}</title></circle>')
        if score is not None:
            x = axis(score)
            body.append(f'<line class="score" x1="{x:.1f}" y1="{y - 9}" x2="{x:.1f}" y2="{y + 9}" '
                        f'stroke="#000" stroke-width="2"><title>{escape(label)} score: '
                        f'{_num(score)}</title></line>')
    return _svg(width, height, title, body)


def line_plot(series: list[tuple[str, list[tuple[float, float]]]], x_label: str, y_label: str,
              title: str, target: float | None = None) -> str:
    """Lines of (x, y) points, one per series; a dashed horizontal line at `target`."""
    width, height, left, right, top, bottom = 480, 280, 55, 15, 12, 45
    xs = [x for _, points in series for x, _ in points]
    ys = [y for _, points in series for _, y in points] + ([target] if target is not None else [])
    x_axis = Axis(xs, left, width - right, log=False, include_zero=True)
    y_axis = Axis(ys, height - bottom, top, log=False)
    body = _x_axis(x_axis, height - bottom, top, x_label)
    body.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#333"/>')
    for tick in y_axis.ticks():
        y = y_axis(tick)
        body.append(f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{_num(tick)}</text>')
    body.append(f'<text transform="translate(12 {(top + height - bottom) / 2}) rotate(-90)" '
                f'text-anchor="middle" {FONT}>{escape(y_label)}</text>')
    if target is not None:
        y = y_axis(target)
        body.append(f'<line class="target" x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
                    f'stroke="#000" stroke-dasharray="5 4"><title>target {_num(target)}</title></line>')
    for i, (label, points) in enumerate(series):
        if not points:
            continue
        color = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{x_axis(x):.1f},{y_axis(y):.1f}" for x, y in points)
        body.append(f'<polyline class="curve" points="{path}" fill="none" stroke="{color}" '
                    f'stroke-width="1.5"><title>{escape(label)}</title></polyline>')
    return _svg(width, height, title, body)


def bar_chart(items: list[tuple[str, float]], x_label: str, title: str) -> str:
    """Horizontal bars, one per (label, value), in the given order."""
    width, left, right, row = 760, 260, 60, 22
    height = 50 + row * len(items)
    axis = Axis([v for _, v in items] + [0.0], left, width - right, log=False, include_zero=True)
    body = _x_axis(axis, 10 + row * len(items), 10, x_label)
    for i, (label, value) in enumerate(items):
        y = 10 + row * i
        x = axis(value)
        body.append(f'<text x="{left - 8}" y="{y + row / 2 + 4}" text-anchor="end" {FONT}>'
                    f'{escape(label[:40])}</text>'
                    f'<rect class="bar" x="{left}" y="{y + 3}" width="{max(x - left, 1):.1f}" '
                    f'height="{row - 6}" fill="{PALETTE[0]}"><title>{escape(label)}: {_num(value)}'
                    f'</title></rect><text x="{x + 4:.1f}" y="{y + row / 2 + 4}" {FONT}>{_num(value)}</text>')
    return _svg(width, height, title, body)
