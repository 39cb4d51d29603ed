#!/usr/bin/env bash
# Peak memory and speed of `infer` over a full-width tile strip (or a whole tile), through the
# real binary (issue 5's bar: a 10980 x 10980 tile, 6 seasons x 30 features, under 4 GB;
# Mpixel/s).
#
#   cargo build --release --bin lulc && benches/infer_tile.sh [WIDTH] [HEIGHT] [FEATURES] [ARCH] [DIR]
#
# Defaults: 10980 x 1024 px, feature set `s2` (17 features x 6 seasons), arch `tempcnn`,
# DIR /tmp/lulc-infer-bench (deleted and re-made). FEATURES is what `index` and `stack` get
# (nodes/src/features/sets.rs): a set expression (`s2`, `s2_s1`, `s2_s1_palsar`, `s2_s1+dsm`,
# ...), a YAML flow list, or `30`: the 30 features of the bar as
#   [s2, s1, HH, HV, "HH/HV", dsm]
# = the 10 Sentinel-2 bands and 7 indices (17), the 8 Sentinel-1 features VV VH VV-VH VV/VH and
# the GLCM savg/diss of VV and VH (8), PALSAR-2 HH HV HH/HV (3), DSM and slope (2). Road
# distance is not available (no roads are generated), so `all`/`static`/`roads` are refused.
# 1. benches/tile_memory.sh (FEATURES and HEIGHT passed on) makes the strip's scenes with
#    gdal_create: Sentinel-2 always, and the Sentinel-1, PALSAR-2 and DSM scenes the features
#    need (constant values per band and date, small per-date offsets: the network's cost does
#    not depend on them; units and resolutions as `acquire` expects them, see that script), and
#    runs acquire -> mask -> composite (`own`) -> index -> stack on them.
# 2. A model is trained on the simulated demo area (128 px, 2020) with the same features, in the
#    same store: its spec acquires, composites (`gap_fill`) and indexes the simulated Sentinel-2
#    and, as needed, Sentinel-1, PALSAR-2 and DSM (as pipelines/demo.yaml does).
# 3. `infer` classifies the strip with it; only that step runs in the measured `lulc run`
#    (`/usr/bin/time -v`: wall and peak RSS), and its metrics (pixels; Mpixel/s from the step's
#    `duration_s`) and the stack's shape (features x seasons) are printed.
# The blocks `infer` holds do not depend on the raster's height (256 x 256 px, a bounded number
# in flight), so a full-width strip shows most of a tile's peak (30 features: 438 MB for the
# strip, 695 MB for the whole tile, the difference GDAL's block cache filling over the longer
# run); HEIGHT=WIDTH measures the whole tile (about 1.5 h on 2 cores, 40 min of it features).
set -euo pipefail
WIDTH=${1:-10980}
HEIGHT=${2:-1024}
FEATURES=${3:-s2}
ARCH=${4:-tempcnn}
DIR=${5:-/tmp/lulc-infer-bench}
[[ $FEATURES == 30 ]] && FEATURES='[s2, s1, HH, HV, "HH/HV", dsm]'
HERE=$(cd "$(dirname "$0")" && pwd)
LULC=${LULC:-$HERE/../target/release/lulc}
export LULC
HEIGHT=$HEIGHT FEATURES=$FEATURES "$HERE/tile_memory.sh" "$WIDTH" "$DIR"
SENSORS=" $(cat "$DIR/sensors") "

# The tile spec plus a model trained on the simulated area and the map of the strip.
model_spec() {
  sed -e 's/^name: tile-memory/name: infer-tile/' "$DIR/tile.yaml"
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
YAML
  local inputs="s2: sim_composite" sensor collection
  for sensor in s1 palsar; do
    [[ $SENSORS == *" $sensor "* ]] || continue
    case $sensor in s1) collection=sentinel-1-grd;; palsar) collection=alos-palsar2-scansar;; esac
    cat <<YAML
  sim_$sensor:
    kind: acquire
    for_each: { year: { param: years, pad: 1 } }
    inputs: { catalog: aoi }
    params: { collection: $collection }
  sim_${sensor}_composite:
    kind: composite
    for_each: { year: years }
    inputs: { scenes: { from: sim_$sensor, year: "-1..+1" } }
    params: { window: gap_fill }
YAML
    inputs+=", $sensor: sim_${sensor}_composite"
  done
  if [[ $SENSORS == *" dsm "* ]]; then
    cat <<YAML
  sim_dsm:
    kind: acquire
    inputs: { catalog: aoi }
    params: { collection: dsm }
YAML
    inputs+=", dsm: sim_dsm"
  fi
  cat <<YAML
  sim_features:
    kind: index
    for_each: { year: years }
    inputs: { $inputs }
    params: { features: $FEATURES }
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
"$LULC" show model.yaml 'stack[year=2020]' --store "$DIR/store" --json > stack.json
/usr/bin/time -v "$LULC" run infer.yaml --store "$DIR/store" --json > infer.json 2> infer-time.txt \
  || { cat infer-time.txt; exit 1; }
grep -E "Elapsed|Maximum resident" infer-time.txt
python3 - "$WIDTH" "$HEIGHT" <<'PY'
import json, sys
width, height = map(int, sys.argv[1:])
meta = json.load(open("stack.json"))["outputs"]["features"]["meta"]
names, seasons = meta["features"], [s for s, _ in meta["files"]]
print(f'input: {width} x {height} px, {len(seasons)} seasons x {len(names)} features: '
      + " ".join(names))
doc = json.load(open("infer.json"))
ran = [s for s in doc["steps"] if s["status"] == "ran"]
for s in ran:
    m = s["metrics"]
    print(f'{s["id"]} ran in {s["duration_s"]:.1f} s: {m.get("pixels")} px classified, '
          f'{m.get("nodata_pixels")} nodata, '
          f'{(m["pixels"] + m["nodata_pixels"]) / 1e6 / s["duration_s"]:.3f} Mpixel/s')
assert [s["kind"] for s in ran] == ["infer"], [s["id"] for s in ran]
PY
