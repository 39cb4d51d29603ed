#!/usr/bin/env bash
# Peak memory and speed of `infer` over a full-width Sentinel-2 tile strip, through the real
# binary (issue 5's bar: a 10980 x 10980 tile, 6 seasons x 30 features, under 4 GB; Mpixel/s).
#
#   cargo build --release --bin lulc && benches/infer_tile.sh [WIDTH] [HEIGHT] [FEATURES] [ARCH] [DIR]
#
# Defaults: 10980 x 1024 px, feature set `s2` (17 features x 6 seasons), arch `tempcnn`.
# 1. benches/tile_memory.sh makes the strip's scenes (constant values per band and date: the
#    network's cost does not depend on them) and runs acquire -> mask -> composite -> index ->
#    stack on them.
# 2. A model is trained on the simulated demo area (128 px, 2020) with the same feature set, in
#    the same store.
# 3. `infer` classifies the strip with it; only that step runs in the measured `lulc run`
#    (`/usr/bin/time -v`: wall and peak RSS), and its `mpixel_per_s` metric is printed.
# Memory of the block-wise `infer` does not depend on the raster's height (blocks of 256 x 256
# px, a bounded number in flight), so a full-width strip shows a tile's peak.
set -euo pipefail
WIDTH=${1:-10980}
HEIGHT=${2:-1024}
FEATURES=${3:-s2}
ARCH=${4:-tempcnn}
DIR=${5:-/tmp/lulc-infer-bench}
HERE=$(cd "$(dirname "$0")" && pwd)
LULC=${LULC:-$HERE/../target/release/lulc}
export LULC
HEIGHT=$HEIGHT "$HERE/tile_memory.sh" "$WIDTH" "$DIR"

# The tile spec plus a model trained on the simulated area and the map of the strip.
model_spec() {
  sed -e 's/^name: tile-memory/name: infer-tile/' -e "s/features: s2 }/features: $FEATURES }/" \
    "$DIR/tile.yaml"
  cat <<YAML
  aoi:
    kind: simulate
    params: { seed: 42, size: 128, years: "2019..2021" }
  sim_s2:
    kind: acquire
    for_each: { year: { param: years, pad: 1 } }
    inputs: { catalog: aoi }
    params: { collection: sentinel-2-l2a }
  sim_clear:
    kind: mask
    for_each: { year: { param: years, pad: 1 } }
    inputs: { scenes: sim_s2 }
  sim_composite:
    kind: composite
    for_each: { year: years }
    inputs: { scenes: { from: sim_clear, year: "-1..+1" } }
    params: { window: gap_fill }
  sim_features:
    kind: index
    for_each: { year: years }
    inputs: { s2: sim_composite }
  sim_stack:
    kind: stack
    for_each: { year: years }
    inputs: { features: sim_features }
    params: { features: $FEATURES }
  reference:
    kind: points
    inputs: { catalog: aoi }
    params: { path: "reference/points_2020.gpkg", year: 2020 }
  samples:
    kind: sample
    for_each: { year: years }
    inputs: { features: sim_stack, points: reference }
  model:
    kind: train
    for_each: { year: years }
    inputs: { samples: samples }
    params: { arch: $ARCH }
YAML
}
cd "$DIR"
model_spec > model.yaml
{ model_spec; cat <<YAML
  map:
    kind: infer
    for_each: { year: years }
    inputs: { model: model, features: stack }
YAML
} > infer.yaml
"$LULC" run model.yaml --store "$DIR/store" > /dev/null
/usr/bin/time -v "$LULC" run infer.yaml --store "$DIR/store" --json > infer.json 2> infer-time.txt \
  || { cat infer-time.txt; exit 1; }
grep -E "Elapsed|Maximum resident" infer-time.txt
python3 - "$WIDTH" "$HEIGHT" <<'PY'
import json, sys
doc = json.load(open("infer.json"))
ran = [s for s in doc["steps"] if s["status"] == "ran"]
for s in ran:
    m = s["metrics"]
    print(f'{s["id"]} ran in {s["duration_s"]:.1f} s: {m.get("pixels")} px, '
          f'{m.get("mpixel_per_s"):.3f} Mpixel/s')
assert [s["kind"] for s in ran] == ["infer"], [s["id"] for s in ran]
PY
