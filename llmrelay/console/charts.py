"""Hand-written SVG charts: a column chart of a series over time with axes, units and a
legend. Numbers and labels are the only inputs; labels are escaped."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from .html import esc

__all__ = ["column_chart"]

_W, _H = 560, 200
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 12, 12, 40


def _nice(top: float) -> float:
    """A round axis maximum at or above ``top``."""
    if top <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(top))) / 10 if top >= 1 else 1.0
    if top < 1:
        magnitude = 0.1
        while magnitude / 10 >= top:
            magnitude /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= top:
            return step * magnitude
    return 10 * magnitude


def _label(start: int, bucket_s: int) -> str:
    when = datetime.fromtimestamp(start, UTC)
    return when.strftime("%H:%M" if bucket_s < 86400 else "%m-%d")


def column_chart(
    title: str,
    unit: str,
    points: Sequence[tuple[int, float]],
    bucket_s: int,
    fmt: Callable[[float], str],
    *,
    color: str = "#3b6fd8",
) -> str:
    """A column chart of ``points`` (bucket start in Unix seconds, value) as an SVG figure:
    a y axis in ``unit`` with three ticks, the time axis (UTC; hours or dates) with up to
    six labels, and a legend naming the series and its unit. ``fmt`` formats tick values."""
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    top = _nice(max((v for _, v in points), default=0.0))
    n = max(len(points), 1)
    col = plot_w / n
    parts = [
        f'<figure class="chart"><figcaption>{esc(title)} <span class="unit">({esc(unit)},'
        f" per {'hour' if bucket_s < 86400 else 'day'}, UTC)</span></figcaption>",
        f'<svg viewBox="0 0 {_W} {_H}" role="img" aria-label="{esc(title)} in {esc(unit)}">',
    ]
    for i in range(3):
        value = top * i / 2
        y = _TOP + plot_h - plot_h * i / 2
        parts.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_W - _RIGHT}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
            f"{esc(fmt(value))}</text>"
        )
    for i, (_, value) in enumerate(points):
        h = plot_h * value / top if top else 0
        if h > 0:
            x = _LEFT + i * col + col * 0.1
            parts.append(
                f'<rect x="{x:.1f}" y="{_TOP + plot_h - h:.1f}" width="{max(col * 0.8, 1):.1f}"'
                f' height="{h:.1f}" fill="{esc(color)}"/>'
            )
    step = max(1, -(-len(points) // 6))
    for i in range(0, len(points), step):
        x = _LEFT + i * col + col / 2
        parts.append(
            f'<text x="{x:.1f}" y="{_H - _BOTTOM + 16}" text-anchor="middle" font-size="11">'
            f"{esc(_label(points[i][0], bucket_s))}</text>"
        )
    parts.append(
        f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_W - _RIGHT}" y2="{_TOP + plot_h}"'
        ' stroke="#888"/>'
        f'<rect x="{_LEFT}" y="{_H - 14}" width="10" height="10" fill="{esc(color)}"/>'
        f'<text x="{_LEFT + 14}" y="{_H - 5}" font-size="11">{esc(title)} ({esc(unit)})</text>'
        "</svg></figure>"
    )
    return "".join(parts)
