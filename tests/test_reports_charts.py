"""launcher/reports/charts.py: accessible, escaped SVG; gaps for suppressed values."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest
from markupsafe import Markup

from launcher.reports import charts

SVG = "{http://www.w3.org/2000/svg}"
EVIL = '<script>alert(1)</script>"&'


def _parse(svg: Markup) -> ET.Element:
    root = ET.fromstring(str(svg))  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    return root


def _title_desc(root: ET.Element) -> tuple[str, str]:
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and desc is not None
    labelled = (root.get("aria-labelledby") or "").split()
    assert labelled == [title.get("id"), desc.get("id")]
    return title.text or "", desc.text or ""


CHARTS: dict[str, Callable[[str], Markup]] = {
    "line": lambda text: charts.line_chart(
        [text, "b"], [(text, [1, None])], title=text, desc=text, marker=0, marker_label=text
    ),
    "sparkline": lambda text: charts.sparkline(
        [1, 2], [text, "b"], title=text, axis_label=text, css_id="spark"
    ),
    "bar": lambda text: charts.bar_chart(
        [(text, 3), ("b", None)], title=text, desc=text, css_id="b"
    ),
    "heatmap": lambda text: charts.heatmap(
        [{"weekday": 0, "hour": 9, "launches": 4}], title=text, desc=text
    ),
}


@pytest.mark.parametrize("kind", list(CHARTS))
def test_every_chart_has_title_and_desc_and_escapes_text(kind: str) -> None:
    svg = CHARTS[kind](EVIL)
    assert "<script>" not in svg
    title, _ = _title_desc(_parse(svg))
    assert title == EVIL  # shown as text, exactly


@pytest.mark.parametrize(
    "svg",
    [
        pytest.param(charts.line_chart([], [], title="t", desc="d"), id="line, no data"),
        pytest.param(charts.line_chart(["a"], [("s", [None])], title="t", desc="d"), id="line"),
        pytest.param(
            charts.sparkline([], [], title="t", axis_label="a", css_id="s"),
            id="sparkline, no data",
        ),
        pytest.param(
            charts.sparkline([None, None], ["a", "b"], title="t", axis_label="a", css_id="s"),
            id="sparkline, gaps",
        ),
        pytest.param(charts.bar_chart([], title="t", desc="d", css_id="b"), id="bar, no rows"),
        pytest.param(charts.heatmap([], title="t", desc="d"), id="heatmap, no cells"),
    ],
)
def test_empty_and_suppressed_data_still_make_a_valid_chart(svg: Markup) -> None:
    _title_desc(_parse(svg))


def test_a_suppressed_value_is_a_gap_not_a_zero() -> None:
    line = charts.sparkline([1, None, 3], ["a", "b", "c"], title="t", axis_label="x", css_id="s")
    path = _parse(line).find(f"{SVG}path")
    assert path is not None
    moves = (path.get("d") or "").split()
    assert [m[0] for m in moves] == ["M", "M"]  # the pen lifts over the gap
    assert _title_desc(_parse(line))[1] == "a: 1, b: suppressed, c: 3"


def test_a_sparkline_shows_its_first_and_last_value_and_an_axis_label() -> None:
    root = _parse(
        charts.sparkline(
            [1200, 900, 640],
            ["2025-01", "2025-02", "2025-03"],
            title="Teams",
            axis_label="launches per month, 2025-01 – 2025-03",
            css_id="s",
            fmt=lambda v: f"{v:,.0f}".replace(",", "."),
        )
    )
    texts: dict[str | None, list[str | None]] = {
        t.get("class"): [] for t in root.iter(f"{SVG}text")
    }
    for t in root.iter(f"{SVG}text"):
        texts[t.get("class")].append(t.text)
    assert texts["spark-end"] == ["1.200", "640"]  # formatted as the caller's language
    assert texts["spark-axis"] == ["launches per month, 2025-01 – 2025-03"]


@pytest.mark.parametrize("months", [2, 6, 12, 13, 24, 37, 60])
def test_month_labels_are_at_least_a_label_width_apart(months: int) -> None:
    """At the largest tick size (narrow screens, static/style.css), neighbours keep a label
    width between them: centres at least two label widths apart."""
    labels = [f"{2020 + (m // 12)}-{m % 12 + 1:02d}" for m in range(months)]
    svg = charts.line_chart(labels, [("s", list(range(months)))], title="t", desc="d")
    ticks = [t for t in _parse(svg).iter(f"{SVG}text") if t.get("class") == "tick"]
    xs = [float(t.get("x") or 0) for t in ticks]
    assert ticks and ticks[0].text == labels[0]
    width = charts.label_width(labels[0])
    assert all(b - a >= 2 * width for a, b in zip(xs, xs[1:], strict=False)), xs


def test_a_suppressed_bar_is_labelled_not_drawn() -> None:
    root = _parse(charts.bar_chart([("a", 10), ("b", None)], title="t", desc="d", css_id="b"))
    assert len(root.findall(f"{SVG}rect")) == 1
    texts = [t.text for t in root.findall(f"{SVG}text")]
    assert "too few users to show" in texts


def test_a_suppressed_heatmap_cell_is_hatched() -> None:
    cells: list[dict[str, object]] = [
        {"weekday": 0, "hour": 0, "launches": None},
        {"weekday": 1, "hour": 1, "launches": 0},
        {"weekday": 2, "hour": 2, "launches": 8},
    ]
    rects = _parse(charts.heatmap(cells, title="t", desc="d")).findall(f"{SVG}rect")
    assert [r.get("fill") for r in rects] == ["url(#hatch)", "#f1f3f6", "rgba(11,92,173,1.000)"]


def test_numbers_are_formatted_for_people() -> None:
    assert charts._fmt(12) == "12" and charts._fmt(2.5) == "2.5"
    assert charts._fmt(12345) == "12 345"
    assert charts._nice_max(0) == 1.0 and charts._nice_max(7) == 10.0
    assert charts._nice_max(230) == 250.0 and charts._nice_max(100) == 100.0
