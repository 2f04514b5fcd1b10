#!/usr/bin/python3
"""Plot a kvbm-replay sweep: hit rate vs G1 capacity, one line per policy.

Usage: scripts/plot_sweep.py SWEEP.csv OUT.png [--title TITLE] [--metric total_hit_rate]

SWEEP.csv is what `kvbm-replay --sweep --csv SWEEP.csv` writes. Needs Debian's
python3-matplotlib (scripts/install-deps.sh installs it).
"""
import argparse
import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="sweep CSV from kvbm-replay --sweep")
    parser.add_argument("png", help="output image")
    parser.add_argument("--title", default=None)
    parser.add_argument(
        "--metric",
        default="total_hit_rate",
        help="column to plot (default total_hit_rate: G1 + G2 hits / blocks requested)",
    )
    args = parser.parse_args()

    series = defaultdict(list)
    modes = set()
    with open(args.csv, newline="") as f:
        for row in csv.DictReader(f):
            if args.metric not in row:
                print(f"plot_sweep: no column {args.metric!r} in {args.csv}", file=sys.stderr)
                return 1
            series[row["policy"]].append((int(row["blocks"]), 100.0 * float(row[args.metric])))
            modes.add(row["mode"])
    if not series:
        print(f"plot_sweep: {args.csv} has no rows", file=sys.stderr)
        return 1

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    # Policies often coincide exactly; distinct markers and dashes keep every line visible.
    styles = [("o", "-", 9), ("s", "--", 7), ("^", ":", 6), ("D", "-.", 4), ("v", "-", 3)]
    for i, (policy, points) in enumerate(sorted(series.items())):
        points.sort()
        marker, dashes, size = styles[i % len(styles)]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=marker, linestyle=dashes,
                markersize=size, label=policy)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("G1 capacity (blocks)")
    ax.set_ylabel(f"{args.metric.replace('_', ' ')} (%)")
    ax.set_title(args.title or f"kvbm-replay sweep ({', '.join(sorted(modes))} mode)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="policy")
    fig.tight_layout()
    fig.savefig(args.png)
    print(f"plot_sweep: wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
