#!/usr/bin/env bash
# Issue 16's bars against a real STAC API on this machine (scripts/stac-local.sh: stac-fastapi-pgstac
# on PostgreSQL + PostGIS, nginx serving the assets with HTTP Range and a request log).
#
#   benches/stac_repeat.sh [REPEATS]      # default 20
#
# 1. Reliability: the suite's catalog test (tests/testsuite/catalogs.rs: Earth Search, Planetary
#    Computer and Copernicus Data Space item shapes, 6 acquire steps, `--jobs 2`, values checked
#    exactly, more than one search page) run REPEATS times, each into a fresh store, every run's
#    outputs compared with the first's.
# 2. Requests per band on realistic files: one Earth Search-shaped item whose 11 bands are
#    Cloud-Optimized GeoTIFFs of a full tile's size (10980 px at 10 m, 5490 px at 20 m, 1024 px
#    blocks, DEFLATE), acquired onto a 2 km window; every request nginx logged for them,
#    by kind (size probe, header read, pixel reads), and any request for another path (sidecars).
# 3. Reference: pystac-client (installed into the STAC venv) searching the same collection with
#    the same query, its item count beside lulc's `listed`.
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${1:-20}
eval "$(scripts/stac-local.sh start)"
VENV=${LULC_STAC_VENV:-$HOME/.cache/lulc-stac-venv}
# Requests and values do not depend on the profile: the test profile's build serves both parts.
cargo build -q --bin lulc
LULC=${LULC:-$PWD/target/debug/lulc}
echo "machine: $(nproc) cores; $(gdalinfo --version)"

echo "=== 1. the catalog test, $REPEATS runs of 6 acquire steps with --jobs 2"
SECONDS=0
LULC_STAC_REPEATS=$REPEATS cargo test -q --test testsuite \
  catalogs::acquire_reads_three_catalog_conventions_from_a_real_stac_api -- --nocapture 2>&1 |
  grep -E "catalogs: run|test result|panicked|skipped" | tail -n 4
echo "wall: ${SECONDS} s for $REPEATS runs"

echo "=== 2. requests per band on tile-sized COGs"
WORK=$(mktemp -d /tmp/lulc-stac-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
COLL=bench-es-$$-$(date +%s)
DIR=$LULC_TEST_ASSET_DIR/$COLL/S2B_48PXS_20220310_0_L2A
mkdir -p "$DIR"
mkcog() { # band, size px, res m, value
  gdal_create -q -of GTiff -outsize "$2" "$2" -bands 1 -ot UInt16 -burn "$4" -a_srs EPSG:32648 \
    -a_ullr 600000 1200000 709800 1090200 "$WORK/$1.tif"
  # A gradient would compress less but read the same blocks; constant values keep this quick.
  gdal_translate -q -of COG -co BLOCKSIZE=1024 -co COMPRESS=DEFLATE -co OVERVIEWS=NONE \
    "$WORK/$1.tif" "$DIR/$1.tif"
  rm "$WORK/$1.tif"
}
for b in B02 B03 B04 B08; do mkcog $b 10980 10 1500; done
for b in B05 B06 B07 B8A B11 B12; do mkcog $b 5490 20 1800; done
mkcog SCL 5490 20 4
ls -l "$DIR" | awk 'NR > 1 { s += $5 } END { print "band files: " s / 1048576 " MiB" }'
"$VENV/bin/python" - "$LULC_TEST_STAC_API" "$LULC_TEST_ASSET_URL" "$COLL" <<'EOF'
import json, sys, urllib.request
api, assets, coll = sys.argv[1:]
keys = {"B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2",
        "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B11": "swir16", "B12": "swir22", "SCL": "scl"}
item_id = "S2B_48PXS_20220310_0_L2A"
w, s, e, n = 105.9, 9.85, 106.92, 10.86
item = {"type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": coll,
        "bbox": [w, s, e, n], "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
        "properties": {"datetime": "2022-03-10T03:25:39Z", "s2:processing_baseline": "04.00",
                       "earthsearch:boa_offset_applied": True, "grid:code": "MGRS-48PXS", "eo:cloud_cover": 3.0},
        "assets": {k: {"href": f"{assets}/{coll}/{item_id}/{b}.tif", "type": "image/tiff; application=geotiff; profile=cloud-optimized"}
                   for b, k in keys.items()}, "links": []}
collection = {"type": "Collection", "id": coll, "stac_version": "1.0.0", "description": coll, "license": "proprietary",
              "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}}, "links": []}
for path, body in [("/collections", collection), (f"/collections/{coll}/items", item)]:
    req = urllib.request.Request(api + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
EOF
cat >"$WORK/pipeline.yaml" <<EOF
name: stac-bench
nodes:
  s2:
    kind: acquire
    for_each: { year: [2022] }
    params:
      catalog: "$LULC_TEST_STAC_API"
      collection_id: $COLL
      grid: { crs: "EPSG:32648", bbox: [650000, 1140000, 652000, 1142000], res: 10 }
EOF
from=$(wc -l <"$LULC_TEST_ASSET_LOG")
/usr/bin/time -f "acquire: %e s, %M KiB peak" "$LULC" run "$WORK/pipeline.yaml" --store "$WORK/store" --jobs 2 --json >"$WORK/run.json"
"$VENV/bin/python" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("lulc listed:", [s["metrics"].get("listed") for s in d["steps"]], "status:", [s["status"] for s in d["steps"]])' "$WORK/run.json"
tail -n +$((from + 1)) "$LULC_TEST_ASSET_LOG" >"$WORK/requests.log"
awk -v coll="/$COLL/" '
  index($2, coll) != 1 { other++; next }
  { n = split($2, p, "/"); f = p[n]; files[f] = 1
    if ($1 == "HEAD") head[f]++
    else if ($4 ~ /bytes=0-/) hdr[f]++
    else px[f]++ }
  END {
    for (f in files) { nf++; h += head[f]; r += hdr[f]; x += px[f]
      if (head[f] + hdr[f] + px[f] > worst) { worst = head[f] + hdr[f] + px[f]; wf = f } }
    printf "band files read: %d; per band: %.1f size probes (HEAD), %.1f header reads, %.1f pixel reads; most: %s with %d\n", nf, h / nf, r / nf, x / nf, wf, worst
    printf "requests for other paths (sidecars, listings): %d\n", other + 0
  }' "$WORK/requests.log"

echo "=== 3. reference: pystac-client against the same API"
"$VENV/bin/pip" install -q --disable-pip-version-check pystac-client==0.9.0 >/dev/null 2>&1 ||
  echo "(pystac-client could not be installed: skipped)"
if "$VENV/bin/python" -c 'import pystac_client' 2>/dev/null; then
  "$VENV/bin/python" - "$LULC_TEST_STAC_API" "$COLL" <<'EOF'
import sys, time
from pystac_client import Client
api, coll = sys.argv[1:]
t = time.time()
items = list(Client.open(api).search(collections=[coll], bbox=[105.95, 10.3, 105.97, 10.32],
                                     datetime="2022-01-01T00:00:00Z/2022-12-31T23:59:59Z").items())
print(f"pystac-client: {len(items)} item(s) in {time.time() - t:.2f} s: {[i.id for i in items]}")
EOF
fi
