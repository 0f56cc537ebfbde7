"""Rows -> accessible SVG, rendered on the server (no script, so the CSP stays strict).

Each chart carries ``role="img"``, a ``<title>`` and a ``<desc>``; the page puts the same
numbers in a table beside it. Suppressed values (None) are drawn as gaps, never as zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

PALETTE = ("#0b5cad", "#b4530c", "#0b7a75", "#8a3ffc", "#a4262c", "#2e7d32", "#5b2c83", "#3f5873")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _fmt(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ") if value >= 1000 else f"{value:g}"


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


# The largest size tick labels get, in the chart's own units (static/style.css: 11px, and
# 18px on narrow screens, where the chart is drawn smaller and its text would be unreadable).
TICK_FONT = 18
CHAR_WIDTH = 0.62  # the widest digit of the sans-serif fonts we use, as a share of the size


def label_width(label: str) -> float:
    return len(label) * CHAR_WIDTH * TICK_FONT


def tick_indexes(labels: Sequence[str], step: float) -> list[int]:
    """Which labels to draw along an axis of points ``step`` apart: so that neighbours are at
    least a label width apart at the largest tick size (centres two widths apart), the first
    always, the last too when it keeps that distance."""
    if not labels:
        return []
    room = 2 * max(label_width(label) for label in labels)
    every = max(1, -(-room // max(step, 1e-9)))  # ceil
    shown = list(range(0, len(labels), int(every)))
    last = len(labels) - 1
    if shown[-1] != last and (last - shown[-1]) * step >= room:
        shown.append(last)
    return shown


def _open(width: int, height: int, title: str, desc: str, cls: str) -> str:
    return (
        f'<svg class="chart {cls}" viewBox="0 0 {width} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" aria-labelledby="{cls}-t {cls}-d">'
        f'<title id="{cls}-t">{escape(title)}</title><desc id="{cls}-d">{escape(desc)}</desc>'
    )


def line_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    title: str,
    desc: str,
    marker: int | None = None,
    marker_label: str = "",
    css_id: str = "line",
    width: int = 720,
    height: int = 260,
) -> Markup:
    """One line per series, each scaled to its own maximum (they have different units)."""
    left, right, top, bottom = 48, 16, 16, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(labels), 1)
    step = plot_w / max(n - 1, 1)
    parts = [_open(width, height, title, desc, css_id)]
    parts.append(
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" '
        f'y2="{top + plot_h}"/>'
    )
    for i in tick_indexes(labels, step):
        x = left + i * step
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{height - 18}" text-anchor="middle">'
            f"{escape(labels[i])}</text>"
        )
    if marker is not None and 0 <= marker < n:
        x = left + marker * step
        parts.append(
            f'<line class="marker" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}"/>'
            f'<text class="marker-label" x="{x + 4:.1f}" y="{top + 12}">'
            f"{escape(marker_label)}</text>"
        )
    for s, (name, values) in enumerate(series):
        top_value = _nice_max(max((v for v in values if v is not None), default=0))
        color = PALETTE[s % len(PALETTE)]
        path, pen_down = [], False
        for i, value in enumerate(values):
            if value is None:
                pen_down = False
                continue
            x = left + i * step
            y = top + plot_h - plot_h * value / top_value
            path.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
            pen_down = True
        if path:
            parts.append(
                f'<path class="series" d="{" ".join(path)}" stroke="{color}" fill="none" '
                f'stroke-width="2.5"/>'
            )
        parts.append(
            f'<text class="legend" x="{left + 8 + s * 180}" y="{height - 2}" fill="{color}">'
            f"■ {escape(name)} (max {_fmt(top_value)})</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def sparkline(
    values: Sequence[float | None],
    labels: Sequence[str],
    *,
    title: str,
    axis_label: str,
    css_id: str,
    fmt: Callable[[float], str] = _fmt,
    suppressed: str = "suppressed",
) -> Markup:
    """A small line with its first and last value at its ends and an axis label under it
    (what it counts, from the first to the last label)."""
    width, height, side, pad, axis = 260, 52, 44, 4, 14
    plot_h = height - axis - 2 * pad
    top_value = max((v for v in values if v is not None), default=0) or 1
    step = (width - 2 * side) / max(len(values) - 1, 1)
    points, pen_down = [], False
    ys: list[float | None] = []
    for i, value in enumerate(values):
        if value is None:
            pen_down = False
            ys.append(None)
            continue
        y = pad + plot_h - plot_h * value / top_value
        ys.append(y)
        points.append(f"{'L' if pen_down else 'M'}{side + i * step:.1f},{y:.1f}")
        pen_down = True
    desc = ", ".join(
        f"{label}: {suppressed if v is None else fmt(v)}"
        for label, v in zip(labels, values, strict=True)
    )
    parts = [_open(width, height, title, desc, css_id)]
    if points:
        parts.append(
            f'<path d="{" ".join(points)}" stroke="#0b5cad" fill="none" stroke-width="2"/>'
        )
    if values:
        first, last = values[0], values[-1]
        mid = pad + plot_h / 2
        parts.append(
            f'<text class="spark-end" x="{side - 4}" y="{(ys[0] or mid) + 4:.1f}" '
            f'text-anchor="end">{escape("–" if first is None else fmt(first))}</text>'
            f'<text class="spark-end" x="{width - side + 4}" y="{(ys[-1] or mid) + 4:.1f}">'
            f"{escape('–' if last is None else fmt(last))}</text>"
        )
    parts.append(
        f'<text class="spark-axis" x="{width / 2:.1f}" y="{height - 3}" text-anchor="middle">'
        f"{escape(axis_label)}</text></svg>"
    )
    return Markup("".join(parts))


def bar_chart(
    rows: Sequence[tuple[str, float | None]], *, title: str, desc: str, css_id: str
) -> Markup:
    """Horizontal bars, one per row; a suppressed row is labelled, not drawn."""
    bar_h, gap, label_w, width = 22, 6, 190, 720
    height = max(len(rows), 1) * (bar_h + gap) + gap
    top_value = _nice_max(max((v for _, v in rows if v is not None), default=0))
    parts = [_open(width, height, title, desc, css_id)]
    for i, (label, value) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        parts.append(
            f'<text class="bar-label" x="{label_w - 8}" y="{y + bar_h * 0.7:.1f}" '
            f'text-anchor="end">{escape(label)}</text>'
        )
        if value is None:
            parts.append(
                f'<text class="suppressed" x="{label_w}" y="{y + bar_h * 0.7:.1f}">'
                "too few users to show</text>"
            )
            continue
        w = (width - label_w - 70) * value / top_value
        parts.append(
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="3" fill="#0b5cad"/>'
            f'<text class="bar-value" x="{label_w + w + 6:.1f}" y="{y + bar_h * 0.7:.1f}">'
            f"{escape(_fmt(value))}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def heatmap(
    cells: Sequence[dict[str, object]],
    *,
    title: str,
    desc: str,
    css_id: str = "heatmap",
    weekdays: Sequence[str] = WEEKDAYS,
) -> Markup:
    """Weekday rows x hour columns; darker is more launches; hatched is suppressed."""
    cell, left, top = 26, 40, 22
    width, height = left + 24 * cell + 4, top + 7 * cell + 4
    counts = [v for c in cells if isinstance(v := c.get("launches"), int)]
    top_value = max(counts, default=0) or 1
    parts = [_open(width, height, title, desc, css_id)]
    parts.append(
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#9aa1ad" '
        'stroke-width="2"/></pattern></defs>'
    )
    for hour in range(0, 24, 3):
        parts.append(
            f'<text class="tick" x="{left + hour * cell + cell / 2}" y="14" '
            f'text-anchor="middle">{hour:02d}</text>'
        )
    for day, name in enumerate(weekdays):
        parts.append(
            f'<text class="tick" x="{left - 6}" y="{top + day * cell + cell * 0.65:.1f}" '
            f'text-anchor="end">{escape(name)}</text>'
        )
    for c in cells:
        wd, hr, value = c["weekday"], c["hour"], c.get("launches")
        assert isinstance(wd, int) and isinstance(hr, int)
        assert value is None or isinstance(value, int)
        x, y = left + hr * cell, top + wd * cell
        if value is None:
            fill = "url(#hatch)"
        else:
            shade = value / top_value
            fill = f"rgba(11,92,173,{0.06 + 0.94 * shade:.3f})" if value else "#f1f3f6"
        parts.append(
            f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" rx="3" fill="{fill}"/>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
