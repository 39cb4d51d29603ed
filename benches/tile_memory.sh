#!/usr/bin/env bash
# Peak memory of acquire + mask + composite + index + stack over one Sentinel-2 tile, through the
# real binary (issue 4's bar: composite + index over a 10980 x 10980 tile under 4 GB).
#
#   cargo build --release --bin lulc && benches/tile_memory.sh [SIZE] [DIR]
#
# SIZE (default 10980) px per side at 10 m; HEIGHT=N (env) makes a SIZE-wide, N-tall strip instead
# (benches/infer_tile.sh uses that). The scenes are made with GDAL's `gdal_create` and
# `gdal_translate` (gdal-bin): 12 dates (2 per bi-monthly season) of the 10 S2 bands + SCL,
# 20 m bands at 20 m, tiled DEFLATE; each band a constant plus a per-date offset, so files are
# small but every pixel is read, warped, masked, composited and indexed like real data. Memory
# of the block-wise pipeline does not depend on pixel values. Prints wall time and peak RSS
# (`/usr/bin/time -v`) of the `lulc run`.
set -euo pipefail
SIZE=${1:-10980}
DIR=${2:-/tmp/lulc-tile-bench}
HEIGHT=${HEIGHT:-$SIZE}
LULC=${LULC:-$(cd "$(dirname "$0")/.." && pwd)/target/release/lulc}
rm -rf "$DIR" && mkdir -p "$DIR/scenes"
X0=600000; Y1=1200000
X1=$((X0 + SIZE * 10)); Y0=$((Y1 - HEIGHT * 10))
HALF=$(( (SIZE + 1) / 2 )); HALF_H=$(( (HEIGHT + 1) / 2 ))
manifest="$DIR/scenes/manifest.csv"
echo "date,sensor,band,file,id,processing_baseline" > "$manifest"
d=0
for month in 01 02 03 04 05 06 07 08 09 10 11 12; do
  d=$((d + 1))
  date="2020-${month}-10"; id="S2_2020${month}10"
  mkdir -p "$DIR/scenes/$id"
  for band in B02 B03 B04 B05 B06 B07 B08 B8A B11 B12 SCL; do
    case $band in
      B02) v=$((500 + d * 10));; B03) v=$((800 + d * 10));; B04) v=$((600 + d * 10));;
      B08) v=$((3000 + d * 50));; SCL) v=4;; *) v=$((2000 + d * 20));;
    esac
    case $band in B02|B03|B04|B08) px=$SIZE; py=$HEIGHT; res=10;; *) px=$HALF; py=$HALF_H; res=20;; esac
    gdal_create -q -of GTiff -outsize "$px" "$py" -bands 1 -ot UInt16 -burn "$v" \
      -a_srs EPSG:32648 -a_ullr $X0 $Y1 $((X0 + px * res)) $((Y1 - py * res)) \
      -co TILED=YES -co COMPRESS=DEFLATE "$DIR/scenes/$id/$band.tif"
    echo "$date,sentinel-2-l2a,$band,$id/$band.tif,$id,02.14" >> "$manifest"
  done
done
cat > "$DIR/tile.yaml" <<YAML
name: tile-memory
params: { years: 2020..2020 }
nodes:
  s2:
    for_each: { year: years }
    kind: acquire
    params:
      source: local
      catalog: scenes/manifest.csv
      grid: { crs: "EPSG:32648", bbox: [$X0, $Y0, $X1, $Y1], res: 10 }
  clear:
    for_each: { year: years }
    kind: mask
    inputs: { scenes: s2 }
  composite:
    for_each: { year: years }
    kind: composite
    inputs: { scenes: clear }
    params: { window: own }
  features:
    for_each: { year: years }
    kind: index
    inputs: { s2: composite }
  stack:
    for_each: { year: years }
    kind: stack
    inputs: { features: features }
    params: { features: s2 }
YAML
du -sh "$DIR/scenes"
cd "$DIR"
/usr/bin/time -v "$LULC" run tile.yaml --store "$DIR/store" 2> "$DIR/time.txt" || { cat "$DIR/time.txt"; exit 1; }
grep -E "Elapsed|Maximum resident" "$DIR/time.txt"
du -sh "$DIR/store"
