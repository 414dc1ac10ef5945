"""Small inline-SVG charts for the HTML report: no plotting dependency, no external files.

Three shapes are all the report needs: a line chart (recall@k), a heatmap
(confusion matrix) and overlaid histograms (latency). Output is escaped SVG text
that the report template embeds as-is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

import numpy as np

COLORS = {"ours": "#2563eb", "baseline": "#ea580c"}
_FALLBACK = ("#16a34a", "#9333ea", "#0891b2")
W, H, PAD = 520, 300, 48


def _color(name: str, i: int) -> str:
    return COLORS.get(name, _FALLBACK[i % len(_FALLBACK)])


def _svg(body: list[str], title: str, width: int = W, height: int = H) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        f'font-family="system-ui, sans-serif" font-size="11">'
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13" font-weight="600">'
        f"{escape(title)}</text>" + "".join(body) + "</svg>"
    )


def _legend(names: Sequence[str], x: float, y: float) -> list[str]:
    out = []
    for i, name in enumerate(names):
        out.append(
            f'<rect x="{x}" y="{y + i * 16}" width="10" height="10" fill="{_color(name, i)}"/>'
            f'<text x="{x + 14}" y="{y + i * 16 + 9}">{escape(name)}</text>'
        )
    return out


def _axes(x0: float, y0: float, x1: float, y1: float) -> list[str]:
    return [
        f'<line x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}" stroke="#333"/>',
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#333"/>',
    ]


def line_chart(
    series: Mapping[str, Sequence[float]], title: str, x_label: str = "k", y_max: float = 1.0
) -> str:
    """One line per system over x = 1..n (e.g. recall@k for k = 1..10)."""
    n = max((len(v) for v in series.values()), default=0)
    x0, y0, x1, y1 = PAD, 30, W - 110, H - PAD
    body = _axes(x0, y0, x1, y1)

    def px(i: int) -> float:
        return x0 + (x1 - x0) * (i / max(n - 1, 1))

    def py(v: float) -> float:
        return y1 - (y1 - y0) * (v / y_max if y_max else 0)

    for t in np.linspace(0, y_max, 6):
        body.append(
            f'<line x1="{x0}" y1="{py(t):.1f}" x2="{x1}" y2="{py(t):.1f}" stroke="#eee"/>'
            f'<text x="{x0 - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{t:.1f}</text>'
        )
    for i in range(n):
        body.append(f'<text x="{px(i):.1f}" y="{y1 + 14}" text-anchor="middle">{i + 1}</text>')
    body.append(f'<text x="{(x0 + x1) / 2}" y="{H - 10}" text-anchor="middle">{escape(x_label)}</text>')
    for j, (name, values) in enumerate(series.items()):
        pts = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(values))
        color = _color(name, j)
        body.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        body += [
            f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="3" fill="{color}">'
            f"<title>{escape(name)} k={i + 1}: {v:.3f}</title></circle>"
            for i, v in enumerate(values)
        ]
    body += _legend(list(series), x1 + 14, y0 + 10)
    return _svg(body, title)


def heatmap(matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str) -> str:
    """Confusion matrix: rows expected, columns predicted, darker = more cases."""
    n = len(labels)
    cell, left, top = 58, 100, 60
    width, height = left + n * cell + 20, top + n * cell + 40
    peak = max((max(r) for r in matrix), default=0) or 1
    body = [
        f'<text x="{left + n * cell / 2}" y="{top - 30}" text-anchor="middle">predicted</text>',
        f'<text x="14" y="{top + n * cell / 2}" transform="rotate(-90 14 {top + n * cell / 2})" '
        f'text-anchor="middle">expected</text>',
    ]
    for j, label in enumerate(labels):
        body.append(
            f'<text x="{left + j * cell + cell / 2}" y="{top - 8}" text-anchor="middle" '
            f'font-size="9">{escape(label)}</text>'
        )
    for i, row in enumerate(matrix):
        body.append(
            f'<text x="{left - 6}" y="{top + i * cell + cell / 2 + 4}" text-anchor="end" '
            f'font-size="9">{escape(labels[i])}</text>'
        )
        for j, count in enumerate(row):
            share = count / peak
            fill = f"rgba(37,99,235,{0.08 + 0.85 * share:.2f})" if count else "#fafafa"
            border = "#16a34a" if i == j else "#ddd"
            ink = "#fff" if share > 0.5 else "#111"
            body.append(
                f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell - 2}" '
                f'height="{cell - 2}" fill="{fill}" stroke="{border}"/>'
                f'<text x="{left + j * cell + cell / 2}" y="{top + i * cell + cell / 2 + 4}" '
                f'text-anchor="middle" fill="{ink}">{count}</text>'
            )
    return _svg(body, title, width, height)


def histogram(samples: Mapping[str, Sequence[float]], title: str, bins: int = 20) -> str:
    """Overlaid histograms (shared bins) of latency samples per system."""
    flat = [v for vs in samples.values() for v in vs]
    if not flat:
        return _svg([], title)
    edges = np.histogram_bin_edges(flat, bins=bins)
    counts = {name: np.histogram(vs, bins=edges)[0] for name, vs in samples.items()}
    peak = max(int(c.max()) for c in counts.values()) or 1
    x0, y0, x1, y1 = PAD, 30, W - 110, H - PAD
    bw = (x1 - x0) / bins
    body = _axes(x0, y0, x1, y1)
    for j, (name, c) in enumerate(counts.items()):
        color = _color(name, j)
        for i, count in enumerate(c):
            if not count:
                continue
            h = (y1 - y0) * count / peak
            body.append(
                f'<rect x="{x0 + i * bw:.1f}" y="{y1 - h:.1f}" width="{bw - 1:.1f}" height="{h:.1f}" '
                f'fill="{color}" fill-opacity="0.55"><title>{escape(name)}: {count} in '
                f"{edges[i]:.1f}-{edges[i + 1]:.1f} ms</title></rect>"
            )
    for i in range(0, bins + 1, max(bins // 5, 1)):
        body.append(
            f'<text x="{x0 + i * bw:.1f}" y="{y1 + 14}" text-anchor="middle">{edges[i]:.0f}</text>'
        )
    body.append(f'<text x="{(x0 + x1) / 2}" y="{H - 10}" text-anchor="middle">milliseconds</text>')
    body.append(f'<text x="{x0 - 6}" y="{y0 + 4}" text-anchor="end">{peak}</text>')
    body += _legend(list(samples), x1 + 14, y0 + 10)
    return _svg(body, title)
