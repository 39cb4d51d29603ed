#!/usr/bin/env python3
"""Generate a large spec over the engine's test kinds: TILES tiles x YEARS years x DEPTH steps.

Default: 80 tiles x 6 years x 42 nodes = 20,160 steps, the shape of a national run (80 MGRS tiles,
2017-2022, ~40 steps per tile-year). Each chain reads the previous step of the same partition;
every 5th node also reads the previous year's partition (like a gap-filled composite).
Usage: gen_spec.py OUT.yaml [TILES] [YEARS] [DEPTH]
"""
import sys

out = sys.argv[1]
tiles = int(sys.argv[2]) if len(sys.argv) > 2 else 80
years = int(sys.argv[3]) if len(sys.argv) > 3 else 6
depth = int(sys.argv[4]) if len(sys.argv) > 4 else 42

lines = [
    "name: big",
    "params:",
    f"  years: 2017..{2017 + years - 1}",
    "  tiles: [" + ", ".join(f"T{i:03d}" for i in range(tiles)) + "]",
    "nodes:",
    "  n0:",
    "    kind: emit",
    "    for_each: { tile: tiles, year: { param: years, pad: 1 } }",
    '    params: { value: "${tile}-${year}" }',
]
for d in range(1, depth):
    lines += [f"  n{d}:", "    kind: combine", "    for_each: { tile: tiles, year: years }"]
    if d == 1:
        lines.append('    inputs: { parts: { from: n0, year: "-1..0" } }')
    elif d % 5 == 0 and d > 1:
        lines.append(f"    inputs: {{ parts: [n{d - 1}, {{ from: n1, year: same }}] }}")
    else:
        lines.append(f"    inputs: {{ parts: n{d - 1} }}")
with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")
