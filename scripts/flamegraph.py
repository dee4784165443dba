#!/usr/bin/env python3
"""Folds `perf script` output into stacks and draws a flame graph as SVG (no dependency).

Usage: perf script -i perf.data | scripts/flamegraph.py TITLE > out.svg

Each sample's frames (innermost first in perf's output) are folded root-first; a box's
width is its share of the samples. Frames are shortened (Rust hashes and argument lists
dropped) so the names stay readable.
"""

import html
import re
import sys
from collections import defaultdict

TITLE = sys.argv[1] if len(sys.argv) > 1 else "flame graph"


def clean(name):
    name = re.sub(r"::h[0-9a-f]{16}$", "", name)
    name = re.sub(r"\+0x[0-9a-f]+$", "", name)
    return name or "?"


def stacks(lines):
    cur, comm = [], None
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if comm is not None:
                yield [comm] + [clean(f) for f in reversed(cur)]
            cur, comm = [], None
            continue
        if not line.startswith((" ", "\t")):
            comm = line.split()[0]
            continue
        parts = line.strip().split(None, 1)
        if len(parts) == 2:
            sym = parts[1].rsplit(" (", 1)[0]
            cur.append(sym)
    if comm is not None:
        yield [comm] + [clean(f) for f in reversed(cur)]


def main():
    root = {"n": 0, "c": {}}
    for st in stacks(sys.stdin):
        node = root
        node["n"] += 1
        for f in st:
            node = node["c"].setdefault(f, {"n": 0, "c": {}})
            node["n"] += 1
    width, row = 1200.0, 16
    total = max(root["n"], 1)
    depth = [0]

    def walk(node, x, d, out):
        depth[0] = max(depth[0], d)
        for name, ch in sorted(node["c"].items()):
            w = ch["n"] / total * width
            if w >= 0.3:
                out.append((x, d, w, name, ch["n"]))
                walk(ch, x, d + 1, out)
            x += w

    boxes = []
    walk(root, 0.0, 0, boxes)
    height = (depth[0] + 3) * row
    o = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{int(width)}" height="{height}" '
        f'font-family="monospace" font-size="11">',
        f'<text x="4" y="13">{html.escape(TITLE)} ({total} samples)</text>',
    ]
    for x, d, w, name, n in boxes:
        y = height - (d + 1) * row
        h = (hash(name) & 0xFFFF) / 0xFFFF
        fill = f"rgb({205 + int(50 * h)},{int(80 + 120 * (1 - h))},{int(40 * h)})"
        label = name if len(name) * 7 < w else name[: max(int(w / 7) - 2, 0)] + ".." if w > 21 else ""
        pct = 100.0 * n / total
        o.append(
            f'<g><title>{html.escape(name)} ({n} samples, {pct:.1f}%)</title>'
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 1}" fill="{fill}"/>'
            f'<text x="{x + 2:.1f}" y="{y + 11}">{html.escape(label)}</text></g>'
        )
    o.append("</svg>")
    print("\n".join(o))


if __name__ == "__main__":
    main()
