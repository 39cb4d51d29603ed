#!/usr/bin/env bash
# Peak memory of acquire + mask + composite + index + stack over one Sentinel-2 tile, through the
# real binary (issue 4's bar: composite + index over a 10980 x 10980 tile under 4 GB).
#
#   cargo build --release --bin lulc && benches/tile_memory.sh [SIZE] [DIR]
#
# SIZE (default 10980) px per side at 10 m; HEIGHT=N (env) makes a SIZE-wide, N-tall strip instead
# (benches/infer_tile.sh uses that). The scenes are made with GDAL's `gdal_create` (gdal-bin):
# 12 dates (2 per bi-monthly season) of the 10 S2 bands + SCL, 20 m bands at 20 m, tiled DEFLATE;
# each band a constant plus a per-date offset, so files are small but every pixel is read,
# warped, masked, composited and indexed like real data. Memory of the block-wise pipeline does
# not depend on pixel values. Prints wall time and peak RSS (`/usr/bin/time -v`) of the
# `lulc run`.
#
# FEATURES=... (env, default `s2`): the `features` param of `index` and `stack`, a set
# expression (`s2_s1+dsm`) or a YAML flow list (`[s2, s1, HH, HV, "HH/HV", dsm]`; see
# nodes/src/features/sets.rs). The other sensors it names are generated beside Sentinel-2, in
# the units `acquire` expects from a local manifest (nodes/src/kinds/acquire.rs), and acquired
# and composited (`own` window, median) in the same run:
#   s1      sentinel-1-grd, 12 dates (monthly), VV and VH sigma0 in dB as Float32 at 10 m
#           (VV -8 dB, VH -15 dB, minus 0.1 dB per date);
#   palsar  alos-palsar2-scansar, 12 dates (monthly), HH and HV DN as UInt16 at 25 m, warped
#           bilinear to 10 m (HH 5000 + 20 per date, about -9 dB; HV 2000 + 10 per date, about
#           -17 dB: gamma0 = 10 log10(DN^2) - 83);
#   dsm     dsm, one Float32 scene of `elevation` in metres at 30 m (20 m everywhere, so slope
#           is 0: Horn's slope costs the same whatever the heights).
# Which ones are needed is read off FEATURES (`s1`, `VV`, `VH` -> s1; `palsar`, `HH`, `HV`,
# `NDI`, `NLI` -> palsar; `dsm`, `DSM`, `slope` -> dsm); SENSORS="s1 palsar dsm" (env)
# overrides that. Road distance is not generated: sets with `road_dist` (`all`, `static`,
# `roads`) are refused. The chosen sensors are written to DIR/sensors for benches/infer_tile.sh.
set -euo pipefail
SIZE=${1:-10980}
DIR=${2:-/tmp/lulc-tile-bench}
HEIGHT=${HEIGHT:-$SIZE}
FEATURES=${FEATURES:-s2}
LULC=${LULC:-$(cd "$(dirname "$0")/.." && pwd)/target/release/lulc}
if [[ $FEATURES =~ all|static|roads|road_dist ]]; then
  echo "tile_memory.sh: FEATURES=$FEATURES needs road_dist; this benchmark makes no roads" >&2
  exit 2
fi
if [[ -z ${SENSORS+x} ]]; then
  SENSORS=""
  [[ $FEATURES =~ s1|VV|VH ]] && SENSORS+=" s1"
  [[ $FEATURES =~ palsar|HH|HV|NDI|NLI ]] && SENSORS+=" palsar"
  [[ $FEATURES =~ dsm|DSM|slope ]] && SENSORS+=" dsm"
fi
has() { [[ " $SENSORS " == *" $1 "* ]]; }
rm -rf "$DIR" && mkdir -p "$DIR/scenes"
echo "s2$SENSORS" > "$DIR/sensors"
X0=600000; Y1=1200000
X1=$((X0 + SIZE * 10)); Y0=$((Y1 - HEIGHT * 10))
# Pixels at RES m that cover the 10 m grid (rounded up).
px_at() { echo $(( ($1 * 10 + $2 - 1) / $2 )); }
# raster FILE TYPE RES VALUE: the grid's extent at RES m (covering it), every pixel VALUE.
raster() {
  local px py
  px=$(px_at "$SIZE" "$3"); py=$(px_at "$HEIGHT" "$3")
  gdal_create -q -of GTiff -outsize "$px" "$py" -bands 1 -ot "$2" -burn "$4" \
    -a_srs EPSG:32648 -a_ullr $X0 $Y1 $((X0 + px * $3)) $((Y1 - py * $3)) \
    -co TILED=YES -co COMPRESS=DEFLATE "$DIR/scenes/$1"
}
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
    case $band in B02|B03|B04|B08) res=10;; *) res=20;; esac
    raster "$id/$band.tif" UInt16 "$res" "$v"
    echo "$date,sentinel-2-l2a,$band,$id/$band.tif,$id,02.14" >> "$manifest"
  done
  if has s1; then
    date="2020-${month}-14"; id="S1_2020${month}14"
    mkdir -p "$DIR/scenes/$id"
    raster "$id/VV.tif" Float32 10 "$(awk "BEGIN { print -8 - $d / 10 }")"
    raster "$id/VH.tif" Float32 10 "$(awk "BEGIN { print -15 - $d / 10 }")"
    for band in VV VH; do
      echo "$date,sentinel-1-grd,$band,$id/$band.tif,$id," >> "$manifest"
    done
  fi
  if has palsar; then
    date="2020-${month}-18"; id="PALSAR_2020${month}18"
    mkdir -p "$DIR/scenes/$id"
    raster "$id/HH.tif" UInt16 25 $((5000 + d * 20))
    raster "$id/HV.tif" UInt16 25 $((2000 + d * 10))
    for band in HH HV; do
      echo "$date,alos-palsar2-scansar,$band,$id/$band.tif,$id," >> "$manifest"
    done
  fi
done
if has dsm; then
  mkdir -p "$DIR/scenes/DSM"
  raster DSM/elevation.tif Float32 30 20
  echo "2011-01-01,dsm,elevation,DSM/elevation.tif,DSM," >> "$manifest"
fi

grid="{ crs: \"EPSG:32648\", bbox: [$X0, $Y0, $X1, $Y1], res: 10 }"
# acquire NODE COLLECTION [static]: one acquire node of the manifest (per year unless static).
acquire() {
  echo "  $1:"
  [[ ${3:-} == static ]] || echo "    for_each: { year: years }"
  cat <<YAML
    kind: acquire
    params:
      source: local
      catalog: scenes/manifest.csv
      collection: $2
      grid: $grid
YAML
}
# composite NODE SCENES: own-window median composites of one year.
composite() {
  cat <<YAML
  $1:
    for_each: { year: years }
    kind: composite
    inputs: { scenes: $2 }
    params: { window: own }
YAML
}
index_inputs="s2: composite"
{
  cat <<YAML
name: tile-memory
params: { years: 2020..2020 }
nodes:
YAML
  acquire s2 sentinel-2-l2a
  cat <<YAML
  clear:
    for_each: { year: years }
    kind: mask
    inputs: { scenes: s2 }
YAML
  composite composite clear
  if has s1; then
    acquire s1 sentinel-1-grd; composite s1_composite s1; index_inputs+=", s1: s1_composite"
  fi
  if has palsar; then
    acquire palsar alos-palsar2-scansar; composite palsar_composite palsar
    index_inputs+=", palsar: palsar_composite"
  fi
  if has dsm; then acquire dsm dsm static; index_inputs+=", dsm: dsm"; fi
  cat <<YAML
  features:
    for_each: { year: years }
    kind: index
    inputs: { $index_inputs }
    params: { features: $FEATURES }
  stack:
    for_each: { year: years }
    kind: stack
    inputs: { features: features }
    params: { features: $FEATURES }
YAML
} > "$DIR/tile.yaml"
du -sh "$DIR/scenes"
cd "$DIR"
/usr/bin/time -v "$LULC" run tile.yaml --store "$DIR/store" 2> "$DIR/time.txt" || { cat "$DIR/time.txt"; exit 1; }
grep -E "Elapsed|Maximum resident" "$DIR/time.txt"
du -sh "$DIR/store"
