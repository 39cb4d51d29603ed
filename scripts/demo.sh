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
echo "== lulc run $SPEC   (simulate the area; acquire S2 / S1 / PALSAR-2 / DSM; mask, composite,"
echo "   features; sample the 2020 reference points, migrate their labels to every year, train, map, assess)"
$LULC run "$SPEC" --store "$STORE"
echo "== lulc run $SPEC   (again: nothing changed, everything cached)"
$LULC run "$SPEC" --store "$STORE"
echo "== lulc plan $SPEC --set years=2017..2023   (an added year: only its steps)"
$LULC plan "$SPEC" --store "$STORE" --set years=2017..2023
echo "== lulc results $SPEC: share of pixels without a valid observation per season,"
echo "   the normal approach (own months only) vs the seed's gap-filling window"
$LULC results "$SPEC" --store "$STORE" --node composite_own --node composite --metric 'nodata_share_*'
echo "== lulc results $SPEC: reference labels of 2020 kept in each year by migration (ED/SAD)"
$LULC results "$SPEC" --store "$STORE" --node migrated --metric 'kept*' --metric dropped
echo "== lulc results $SPEC: accuracy on each year's independent validation points,"
echo "   with migrated labels (accuracy) vs the 2020 labels as they are (accuracy_unmigrated)"
$LULC results "$SPEC" --store "$STORE" --node accuracy --node accuracy_unmigrated --metric 'oa*' --metric n_points
echo "== lulc results $SPEC --node change: pixels that changed class at least once, 2017-2022"
$LULC results "$SPEC" --store "$STORE" --node change
echo "== lulc export $SPEC map accuracy change --out demo-out/results   (copies out of the store)"
$LULC export "$SPEC" map accuracy change --out demo-out/results --store "$STORE" >/dev/null
echo
echo "Maps: demo-out/results/map/year=YYYY/map.tif (UInt8, colour table; map.qml beside it styles"
echo "      it in QGIS), confidence.tif (max softmax)"
echo "Accuracy: demo-out/results/accuracy/year=YYYY/assessment.md, assessment.json, confusion.png"
echo "Change: demo-out/results/change/ frequency.tif (times each pixel changed class), areas.csv and"
echo "        areas.png (class area per year), transitions.csv (2017 -> 2022, km²)"
echo "== lulc report $SPEC --out demo-out/report"
$LULC report "$SPEC" --out demo-out/report --store "$STORE" >/dev/null
echo "Report: demo-out/report/index.html (one page, opens offline)"
echo "\`$LULC explain $SPEC 's2[year=2020]' --store $STORE\` shows why a step is fresh or dirty."
