#!/usr/bin/env bash
# `make demo`: run the main job on the embedded default (a simulated area, no internet), then
# show what a change costs and where the results are.
set -euo pipefail
cd "$(dirname "$0")/.."
LULC=${LULC:-./target/release/lulc}
SPEC=pipelines/demo.yaml
STORE=${LULC_STORE:-demo-out/store}
mkdir -p demo-out
echo "== lulc validate $SPEC"
$LULC validate "$SPEC"
echo "== lulc run $SPEC   (simulate the area; acquire S2 / S1 / PALSAR-2 / DSM; mask, composite, features)"
$LULC run "$SPEC" --store "$STORE"
echo "== lulc run $SPEC   (again: nothing changed, everything cached)"
$LULC run "$SPEC" --store "$STORE"
echo "== lulc plan $SPEC --set years=2017..2023   (an added year: only its steps)"
$LULC plan "$SPEC" --store "$STORE" --set years=2017..2023
echo "== lulc results $SPEC: share of pixels without a valid observation per season,"
echo "   the normal approach (own months only) vs the seed's gap-filling window"
$LULC results "$SPEC" --store "$STORE" --node composite_own --node composite --metric 'nodata_share_*'
echo "== lulc show $SPEC 'stack[year=2020]'"
$LULC show "$SPEC" 'stack[year=2020]' --store "$STORE"
echo
echo "Results are in $STORE; list any step's files with: $LULC show $SPEC 'composite[year=2020]' --store $STORE"
echo "(open the GeoTIFF paths in QGIS; \`$LULC explain $SPEC 's2[year=2020]' --store $STORE\` shows why a step is fresh or dirty)"
