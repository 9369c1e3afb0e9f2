#!/usr/bin/env python3
"""Plot compare.sh's results: requests/s and resident memory against connections.

Usage: plot_compare.py bench-results/reactor-vs-threads.csv bench-results/reactor-vs-threads.svg

Two panels side by side, log-scaled connection axis, one line per server.
Points the server could not serve (no responses) are left out of the lines.
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import LogLocator, ScalarFormatter  # noqa: E402


def main() -> int:
    source, target = sys.argv[1], sys.argv[2]
    series: dict[str, list[tuple[int, float, float]]] = {}
    with open(source, newline="") as f:
        for row in csv.DictReader(f):
            if int(row["requests"] or 0) == 0:
                continue
            series.setdefault(row["server"], []).append(
                (int(row["connections"]), float(row["req_per_s"]), float(row["rss_mid_kib"]) / 1024)
            )

    fig, (rps_ax, rss_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, points in series.items():
        points.sort()
        conns = [p[0] for p in points]
        rps_ax.plot(conns, [p[1] for p in points], marker="o", label=name)
        rss_ax.plot(conns, [p[2] for p in points], marker="o", label=name)
    rps_ax.set_title("Throughput")
    rps_ax.set_ylabel("requests per second")
    rss_ax.set_title("Resident memory with the connections open")
    rss_ax.set_ylabel("RSS (MiB)")
    rss_ax.set_yscale("log")
    rss_ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    rss_ax.yaxis.set_major_formatter(ScalarFormatter())
    all_conns = sorted({p[0] for points in series.values() for p in points})
    for ax in (rps_ax, rss_ax):
        ax.set_xscale("log")
        ax.set_xticks(all_conns, [f"{c:,}" for c in all_conns])
        ax.set_xlabel("concurrent keep-alive connections")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    rps_ax.set_ylim(bottom=0)
    fig.suptitle("GET /index.html, server on one core, wrk on the other")
    fig.tight_layout()
    fig.savefig(target)  # the format follows the extension (.svg, .png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
