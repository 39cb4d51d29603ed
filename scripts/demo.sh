#!/usr/bin/env bash
# `make demo`: run the main job on the embedded default, then show what a change costs.
set -euo pipefail
cd "$(dirname "$0")/.."
LULC=./target/release/lulc
SPEC=pipelines/engine-demo.yaml
STORE=${LULC_STORE:-demo-out/store}
export LULC_TEST_KINDS=1
rm -rf "$STORE"
echo "== lulc validate $SPEC"
$LULC validate "$SPEC"
echo "== lulc run $SPEC (first run: everything computes)"
$LULC run "$SPEC" --store "$STORE"
echo "== lulc run $SPEC (again: everything cached)"
$LULC run "$SPEC" --store "$STORE"
echo "== lulc plan $SPEC --set years=2017..2023 (an added year: only its branch and the gathering steps)"
$LULC plan "$SPEC" --store "$STORE" --set years=2017..2023
echo "== lulc run $SPEC --set years=2017..2023"
$LULC run "$SPEC" --store "$STORE" --set years=2017..2023
echo "== lulc show $SPEC 'train[note=ed=0.10]'"
$LULC show "$SPEC" 'train[note=ed=0.10]' --store "$STORE"
echo "== lulc verify"
$LULC verify --store "$STORE"
echo
echo "store: $STORE   (inspect with: $LULC explain $SPEC 'migrate[note=ed=0.10,year=2019]' --store $STORE)"
