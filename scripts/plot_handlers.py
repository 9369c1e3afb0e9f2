#!/usr/bin/env python3
"""Draw bench-handlers.sh's results as one SVG of three bar panels, with no dependencies.

Usage: plot_handlers.py ROWS.tsv OUT.svg

ROWS.tsv is the script's scratch table (tab-separated, first column the kind of row).
Panels: static req/s alone (the mean of the runs alone) and beside the blocking load; resident bytes per event-stream
client; server CPU per event. One bar colour per model.
"""

import sys
from html import escape

COLOURS = {"reactor": "#a0522d", "threads": "#4a7ab0"}
WIDTH, HEIGHT = 330, 300  # one panel
TOP, BOTTOM, LEFT = 56, 64, 56


def read_rows(path: str) -> list[list[str]]:
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value else None  # nan -> None


def panel(x0: int, title: str, unit: str, groups: list[tuple[str, list[tuple[str, float]]]]) -> str:
    """Grouped bars: groups of (label, [(model, value)])."""
    values = [v for _, bars in groups for _, v in bars]
    top = max(values, default=1) * 1.15 or 1
    plot_h = HEIGHT - TOP - BOTTOM
    out = [f'<g transform="translate({x0},0)">']
    out.append(f'<text x="{WIDTH / 2}" y="22" class="title">{escape(title)}</text>')
    out.append(f'<text x="{WIDTH / 2}" y="40" class="unit">{escape(unit)}</text>')
    out.append(f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - 10}" y2="{HEIGHT - BOTTOM}" class="axis"/>')
    slot = (WIDTH - LEFT - 10) / max(len(groups), 1)
    for g, (label, bars) in enumerate(groups):
        bar_w = min(44, (slot - 16) / max(len(bars), 1))
        start = LEFT + g * slot + (slot - bar_w * len(bars)) / 2
        for b, (model, value) in enumerate(bars):
            h = value / top * plot_h
            x, y = start + b * bar_w, HEIGHT - BOTTOM - h
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 4:.1f}" height="{h:.1f}" '
                f'fill="{COLOURS.get(model, "#888")}"><title>{escape(model)}: {value:g}</title></rect>'
            )
            shown = f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
            out.append(f'<text x="{x + (bar_w - 4) / 2:.1f}" y="{y - 4:.1f}" class="value">{shown}</text>')
        out.append(f'<text x="{LEFT + g * slot + slot / 2:.1f}" y="{HEIGHT - BOTTOM + 18}" class="label">{escape(label)}</text>')
    out.append("</g>")
    return "\n".join(out)


def main() -> int:
    rows = read_rows(sys.argv[1])
    models = [m for m in ("reactor", "threads") if any(r[1] == m for r in rows)]
    runs: dict[tuple[str, str], list[float]] = {}
    streams: dict[str, tuple[float | None, float | None]] = {}
    for row in rows:
        if row[0] == "static":  # "alone" twice (before and after the load): their mean
            runs.setdefault((row[2], row[1]), []).append(number(row[3]) or 0)
        elif row[0] == "streams":
            streams[row[1]] = (number(row[6]), number(row[10]))
    static = {key: sum(values) / len(values) for key, values in runs.items()}
    panels = [
        panel(
            0,
            "Static file beside a blocking route",
            "req/s, 50 connections (higher is better)",
            [
                (when, [(m, static.get((key, m), 0)) for m in models])
                for key, when in (("alone", "alone"), ("loaded", "200 clients on /sleep"))
            ],
        ),
        panel(
            WIDTH,
            "Memory per event-stream client",
            "resident bytes (lower is better)",
            [(m, [(m, streams.get(m, (None, None))[0] or 0)]) for m in models],
        ),
        panel(
            2 * WIDTH,
            "CPU per event sent",
            "server µs (lower is better)",
            [(m, [(m, streams.get(m, (None, None))[1] or 0)]) for m in models],
        ),
    ]
    legend = "".join(
        f'<rect x="{20 + i * 110}" y="{3 * 0 + HEIGHT - 22}" width="12" height="12" fill="{COLOURS[m]}"/>'
        f'<text x="{36 + i * 110}" y="{HEIGHT - 12}" class="legend">{m}</text>'
        for i, m in enumerate(models)
    )
    svg = f"""<svg xmlns="http://www.w3.org/2000/svg" width="{3 * WIDTH}" height="{HEIGHT}" viewBox="0 0 {3 * WIDTH} {HEIGHT}" font-family="sans-serif">
<style>
  .title {{ font-size: 14px; font-weight: 600; text-anchor: middle; }}
  .unit {{ font-size: 11px; fill: #666; text-anchor: middle; }}
  .value {{ font-size: 11px; text-anchor: middle; }}
  .label {{ font-size: 11px; text-anchor: middle; fill: #333; }}
  .legend {{ font-size: 12px; }}
  .axis {{ stroke: #999; }}
</style>
<rect width="100%" height="100%" fill="#fff"/>
{chr(10).join(panels)}
{legend}
</svg>
"""
    with open(sys.argv[2], "w") as f:
        f.write(svg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
