"""HTML pieces of the report: tables, inline SVG bar charts, the page template.

The page is one self-contained file (inline CSS, inline SVG, thumbnails as ``data:`` URIs, no
network), so it can be mailed, archived beside a paper, or opened on an air-gapped
workstation. Its one inline script filters and re-orders the sample table; without it the
page reads the same, the table in its default order. Charts are
SVG drawn here rather than matplotlib PNGs: exact, searchable text, a few KB, no extra
dependency, and identical bytes for identical numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from html import escape
from importlib import resources
from string import Template
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medlens.bench.metrics.bootstrap import Estimate

PALETTE = ("#2f6fde", "#e07b39", "#3a9e5c", "#8b5cc7", "#c23b6b", "#1a9aa8", "#8a6d3b")
BASELINE_SHADES = {"prior": "#9aa3b5", "no-image": "#b9c0cc", "random": "#d6dae2"}


def page(title: str, subtitle: str, body: str, version: str) -> str:
    """The whole document, from ``template.html`` beside this module."""
    template = Template(resources.files(__package__).joinpath("template.html").read_text("utf-8"))
    return template.substitute(
        title=escape(title), subtitle=escape(subtitle), body=body, version=escape(version)
    )


def number(value: float | None, spec: str = ".3f") -> str:
    """``value`` formatted by ``spec`` (``"+.1f"`` for a change), "–" when missing or NaN."""
    return "–" if value is None or math.isnan(value) else format(value, spec)


def pct(value: float | None) -> str:
    return number(None if value is None else 100 * value, ".1f")


def estimate_cell(est: Estimate | None) -> str:
    """``61.2 [56.4, 66.0] n=272`` as a table cell (percent)."""
    if est is None or not est.n:
        return '<td class="muted">–</td>'
    return (
        f"<td>{pct(est.value)} <span class='ci'>[{pct(est.low)}, {pct(est.high)}]"
        f"</span> <span class='n'>n={est.n}</span></td>"
    )


def table(header: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]]) -> str:
    """``rows`` are (css class of the row, already rendered ``<td>`` cells)."""
    head = "".join(
        f"<th class='l'>{escape(h)}</th>" if i == 0 else f"<th>{escape(h)}</th>"
        for i, h in enumerate(header)
    )
    body = "".join(f"<tr class='{css}'>{''.join(cells)}</tr>" for css, cells in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def text_cell(text: object, *, left: bool = False) -> str:
    cls = " class='l'" if left else ""
    return f"<td{cls}>{escape(str(text))}</td>"


def colour(index: int, backend: str, role: str) -> str:
    """Models get strong colours; baselines, sanity and shift runs greys, so the eye goes
    to the model."""
    if role != "model":
        return BASELINE_SHADES.get(backend, "#c7ccd6")
    return PALETTE[index % len(PALETTE)]


def legend(series: Sequence[tuple[str, str]]) -> str:
    items = "".join(
        f"<span><i style='background:{c}'></i>{escape(label)}</span>" for label, c in series
    )
    return f"<div class='legend'>{items}</div>"


def grouped_bars(
    categories: Sequence[str],
    series: Sequence[tuple[str, str, Mapping[str, Estimate]]],
    *,
    width: int = 760,
) -> str:
    """Horizontal grouped bars with 95 % interval whiskers, one group per category.

    ``series``: (label, colour, category → estimate). Values are fractions in [0, 1]; the axis
    is 0-100 %.
    """
    label_w, right_pad, bar_h, gap = 190, 100, 11, 10
    plot_w = width - label_w - right_pad
    group_h = bar_h * len(series) + gap
    height = group_h * len(categories) + 28
    svg = f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'"
    parts = [f"{svg} viewBox='0 0 {width} {height}' role='img'>"]
    for tick in range(0, 101, 20):
        x = label_w + plot_w * tick / 100
        parts.append(
            f"<line x1='{x:.1f}' y1='0' x2='{x:.1f}' y2='{height - 18}' stroke='#e4e7ee'/>"
            f"<text x='{x:.1f}' y='{height - 4}' text-anchor='middle'>{tick}%</text>"
        )
    for ci, category in enumerate(categories):
        top = ci * group_h + 4
        parts.append(
            f"<text x='{label_w - 8}' y='{top + group_h / 2}' text-anchor='end' "
            f"dominant-baseline='middle'>{escape(_short(category))}</text>"
        )
        for si, (label, fill, values) in enumerate(series):
            est = values.get(category)
            y = top + si * bar_h
            if est is None or not est.n or math.isnan(est.value):
                continue
            w = plot_w * est.value
            lo = label_w + plot_w * est.low
            hi = label_w + plot_w * est.high
            mid = y + (bar_h - 2) / 2
            tip = f"{label} · {category}: {pct(est.value)}% [{pct(est.low)}, " + (
                f"{pct(est.high)}], n={est.n}"
            )
            parts.append(
                f"<rect x='{label_w}' y='{y}' width='{w:.1f}' height='{bar_h - 2}' "
                f"fill='{fill}'><title>{escape(tip)}</title></rect>"
                f"<line x1='{lo:.1f}' y1='{mid:.1f}' x2='{hi:.1f}' y2='{mid:.1f}' "
                "stroke='#1d2433' stroke-width='1'/>"
                f"<text x='{label_w + plot_w + 6}' y='{mid:.1f}' dominant-baseline='middle' "
                f"class='n'>{pct(est.value)} (n={est.n})</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pre_json(data: Any) -> str:
    return f"<pre>{escape(json.dumps(data, indent=2, sort_keys=True, default=str))}</pre>"
