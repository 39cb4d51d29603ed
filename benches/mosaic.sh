#!/usr/bin/env bash
# A national mosaic: `lulc mosaic` (the `mosaic` node's code) next to `gdalwarp` writing the same
# tiles into the same kind of output, in one run on one machine: wall time and peak memory
# (`/usr/bin/time -v`).
#
#   cargo build --release --bin lulc && benches/mosaic.sh [TILES] [SIZE] [DIR]
#
# TILES (default 80) class maps of SIZE x SIZE px (default 10980, a Sentinel-2 tile at 10 m),
# half in UTM zone 48N and half in zone 49N, laid out as Sentinel-2 tiles are: 109,800 m
# squares every 100 km (9.8 km overlaps), 4 columns per zone, as many rows as needed (Viet Nam
# is long from north to south). Each map is UInt8 with the 14-class legend (colour table and
# `CATEGORY_<code>` names, as `infer` writes them), classes drawn at random per 4 x 4 px
# parcel (seeded by the tile's number), tiled DEFLATE; made once with GDAL (a raw file of the
# parcels upsampled by a VRT, `gdal_translate`) and kept in DIR/tiles for later runs.
#
# Both tools write a Cloud-Optimized GeoTIFF in EPSG:32648 at 10 m on a grid aligned to
# multiples of 10 m (`-tap`), DEFLATE level 6 with the predictor, 512 px blocks, internal
# overviews by MODE, empty blocks left out, compression on all cores. gdalwarp gets its fast
# settings: `-multi -wo NUM_THREADS=ALL_CPUS -wm 1024`. Overlaps: lulc takes the map whose path
# sorts first, gdalwarp the last one given (the same pixels get a class, the overlaps differ).
set -euo pipefail
TILES=${1:-80}
SIZE=${2:-10980}
DIR=${3:-/tmp/lulc-mosaic-bench}
LULC=${LULC:-$(cd "$(dirname "$0")/.." && pwd)/target/release/lulc}
mkdir -p "$DIR/tiles"
PARCEL=4
SMALL=$(( (SIZE + PARCEL - 1) / PARCEL ))
EXTENT=$((SIZE * 10))

# The legend as VRT band metadata and colour table (docs/method.md's classes and colours).
legend_xml() {
  python3 - <<'EOF'
names = ["Water", "Urban/Built-up", "Rice", "Other crops", "Grass/Shrub", "Woody crops/Orchard",
         "Barren", "Evergreen broadleaf forest (EBF)", "Evergreen needleleaf forest (ENF)",
         "Deciduous forest", "Plantation forest", "Mangrove forest", "Aquaculture", "Solar panel"]
colours = ["1f4fd8", "d7191c", "f6e83e", "f4a259", "b5d77b", "a6611a", "d9d9d9", "00441b",
           "2b8c6e", "7fbf3f", "c2a5cf", "01665e", "35b8e0", "6a3d9a"]
print("<Metadata>" + "".join(f'<MDI key="CATEGORY_{i + 1}">{n.replace("&", "&amp;")}</MDI>'
                             for i, n in enumerate(names)) + "</Metadata>")
entries = ['<Entry c1="0" c2="0" c3="0" c4="0"/>']
for c in colours:
    r, g, b = (int(c[i:i + 2], 16) for i in (0, 2, 4))
    entries.append(f'<Entry c1="{r}" c2="{g}" c3="{b}" c4="255"/>')
print("<ColorTable>" + "".join(entries) + "</ColorTable>")
EOF
}

# tile N ZONE X0 Y1: tile number N of zone ZONE with its top-left corner at (X0, Y1).
make_tile() {
  local n=$1 zone=$2 x0=$3 y1=$4
  local name
  name=$(printf "%s/tiles/z%s_%02d.tif" "$DIR" "$zone" "$n")
  [[ -s $name ]] && return
  python3 -c "
import random, sys
table = bytes(1 + b % 14 for b in range(256))
sys.stdout.buffer.write(random.Random($n).randbytes($SMALL * $SMALL).translate(table))
" > "$DIR/tiles/parcels_$n.raw"
  cat > "$DIR/tiles/tile_$n.vrt" <<EOF
<VRTDataset rasterXSize="$SIZE" rasterYSize="$SIZE">
  <SRS>EPSG:326$zone</SRS>
  <GeoTransform>$x0, 10, 0, $y1, 0, -10</GeoTransform>
  <VRTRasterBand dataType="Byte" band="1">
    <NoDataValue>0</NoDataValue>
    <ColorInterp>Palette</ColorInterp>
    $(legend_xml)
    <SimpleSource>
      <SourceFilename relativeToVRT="1">parcels_$n.vrt</SourceFilename>
      <SourceBand>1</SourceBand>
      <SrcRect xOff="0" yOff="0" xSize="$SMALL" ySize="$SMALL"/>
      <DstRect xOff="0" yOff="0" xSize="$((SMALL * PARCEL))" ySize="$((SMALL * PARCEL))"/>
    </SimpleSource>
  </VRTRasterBand>
</VRTDataset>
EOF
  cat > "$DIR/tiles/parcels_$n.vrt" <<EOF
<VRTDataset rasterXSize="$SMALL" rasterYSize="$SMALL">
  <VRTRasterBand dataType="Byte" band="1" subClass="VRTRawRasterBand">
    <SourceFilename relativetoVRT="1">parcels_$n.raw</SourceFilename>
    <ImageOffset>0</ImageOffset><PixelOffset>1</PixelOffset><LineOffset>$SMALL</LineOffset>
  </VRTRasterBand>
</VRTDataset>
EOF
  gdal_translate -q -co TILED=YES -co COMPRESS=DEFLATE -co BIGTIFF=IF_SAFER \
    "$DIR/tiles/tile_$n.vrt" "$name"
  rm -f "$DIR/tiles/parcels_$n.raw" "$DIR/tiles/parcels_$n.vrt" "$DIR/tiles/tile_$n.vrt"
}

echo "== making $TILES tiles of $SIZE x $SIZE px in $DIR/tiles (kept for later runs)"
per_zone=$(( (TILES + 1) / 2 ))
for ((n = 0; n < TILES; n++)); do
  if ((n < per_zone)); then zone=48; k=$n; xbase=400000; else zone=49; k=$((n - per_zone)); xbase=200000; fi
  col=$((k % 4)); row=$((k / 4))
  make_tile "$n" "$zone" $((xbase + col * 100000)) $((2600000 - row * 100000))
done
mapfile -t MAPS < <(ls "$DIR"/tiles/z*.tif | sort)
MAPS=("${MAPS[@]:0:$TILES}")
du -sh "$DIR/tiles"

measure() {
  local label=$1; shift
  local log="$DIR/$label.time"
  /usr/bin/time -v "$@" > "$DIR/$label.out" 2> "$log" || { cat "$DIR/$label.out" "$log"; exit 1; }
  local wall rss
  wall=$(grep "Elapsed (wall clock)" "$log" | awk '{print $NF}')
  rss=$(grep "Maximum resident set size" "$log" | awk '{print $NF}')
  printf "%-9s wall %s  peak RSS %.2f GB\n" "$label" "$wall" "$(echo "$rss / 1048576" | bc -l)"
}

rm -f "$DIR/lulc.tif" "$DIR/gdalwarp.tif"
echo "== lulc mosaic (${#MAPS[@]} maps)"
measure lulc "$LULC" mosaic --out "$DIR/lulc.tif" --crs EPSG:32648 --res 10 "${MAPS[@]}"
cat "$DIR/lulc.out"
echo "== gdalwarp"
measure gdalwarp gdalwarp -q -t_srs EPSG:32648 -tr 10 10 -tap -r near -of COG -dstnodata 0 \
  -multi -wo NUM_THREADS=ALL_CPUS -wm 1024 \
  -co COMPRESS=DEFLATE -co LEVEL=6 -co PREDICTOR=STANDARD -co BLOCKSIZE=512 \
  -co OVERVIEW_RESAMPLING=MODE -co SPARSE_OK=TRUE -co BIGTIFF=IF_SAFER -co NUM_THREADS=ALL_CPUS \
  "${MAPS[@]}" "$DIR/gdalwarp.tif"
for f in lulc gdalwarp; do
  size=$(gdalinfo "$DIR/$f.tif" | grep "^Size is" | sed 's/Size is //')
  printf "%-9s %s px, %s on disk\n" "$f" "$size" "$(du -h "$DIR/$f.tif" | cut -f1)"
done
