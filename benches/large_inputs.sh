#!/usr/bin/env bash
# Large plausible inputs (issue 21): what `sample` and `train` hold and say on inputs far larger
# than the demo's, through the real binary.
#
#   cargo build --release --bin lulc && benches/large_inputs.sh [POINTS] [DIR]
#
# 1. `sample` of POINTS (default 1,000,000) labelled points, uniformly random over a 1024 x 1024
#    px grid, on the features of benches/tile_memory.sh (FEATURES=s2_s1+dsm: 6 seasons x 27
#    features, a 648 MB `samples.f32` for a million points). The features and the points are
#    computed first; then only `sample` runs, and its `lulc run` is timed (`/usr/bin/time -v`:
#    wall time, peak RSS). BEFORE=path (env): another lulc binary, measured side by side on a
#    copy of the same store.
# 2. `train` (`tempcnn`, one epoch) on 300 series of 1 feature x 2000 time steps at batches of
#    16, 64 and 128: peak RSS beside the memory the step forecasts (learn::net::Cost).
# 3. `train` on 300 series of 1 feature x 10,000 time steps with the defaults: the lines it
#    says before and while it trains (stopped after 150 s).
set -euo pipefail
N=${1:-1000000}
DIR=${2:-/tmp/lulc-large-bench}
HERE=$(cd "$(dirname "$0")" && pwd)
LULC=${LULC:-$HERE/../target/release/lulc}
export LULC
FEATURES=s2_s1+dsm "$HERE/tile_memory.sh" 1024 "$DIR" > /dev/null
cd "$DIR"
python3 - "$N" <<'PY'
import random, sys
n = int(sys.argv[1])
rng = random.Random(7)
with open("points.csv", "w") as f:
    f.write("id,x,y,class\n")
    for i in range(1, n + 1):
        x = 600000 + rng.random() * 10240
        y = 1200000 - rng.random() * 10240
        f.write(f"{i},{x:.2f},{y:.2f},{1 + i % 14}\n")
PY
cat >> tile.yaml <<'YAML'
  reference:
    kind: points
    params: { path: points.csv, crs: "EPSG:32648" }
YAML
"$LULC" run tile.yaml --store store > /dev/null 2>&1
cat >> tile.yaml <<'YAML'
  samples:
    for_each: { year: years }
    kind: sample
    inputs: { features: stack, points: reference }
YAML
[[ -n ${BEFORE:-} ]] && rm -rf store-before && cp -a store store-before
measure() { # LABEL BINARY STORE
  /usr/bin/time -v "$2" run tile.yaml --store "$3" 2> "time-$1.txt" > /dev/null || { cat "time-$1.txt"; exit 1; }
  printf '%s: sample of %s points: %s s, peak %s MB\n' "$1" "$N" \
    "$(grep Elapsed "time-$1.txt" | awk '{print $NF}')" \
    "$(( $(grep 'Maximum resident' "time-$1.txt" | awk '{print $NF}') / 1024 ))"
}
measure after "$LULC" store
[[ -n ${BEFORE:-} ]] && measure before "$BEFORE" store-before
ls -l store/objects > /dev/null

# 2 and 3: long series.
python3 - <<'PY'
import random
rng = random.Random(1)
for t in (2000, 10000):
    with open(f"ucr_{t}.txt", "w") as f:
        for i in range(300):
            c = 1 + i % 3
            f.write(" ".join([str(c)] + [f"{rng.gauss(c, 1):.3f}" for _ in range(t)]) + "\n")
PY
train_spec() { # T PARAMS
  cat <<YAML
name: long-series
nodes:
  series:
    kind: samples_csv
    params: { path: ucr_$1.txt, header: false, labels: {"1": 1, "2": 2, "3": 3} }
  model:
    kind: train
    inputs: { samples: series }
    params: { arch: tempcnn, $2 }
YAML
}
for b in 16 64 128; do
  train_spec 2000 "epochs: 1, batch_size: $b" > train.yaml
  rm -rf train-store
  /usr/bin/time -v "$LULC" run train.yaml --store train-store 2> time-train.txt > /dev/null
  printf 'train tempcnn 1 x 2000, batch %s: %s s, peak %s MB\n' "$b" \
    "$(grep Elapsed time-train.txt | awk '{print $NF}')" \
    "$(( $(grep 'Maximum resident' time-train.txt | awk '{print $NF}') / 1024 ))"
done
train_spec 10000 "seed: 1" > train.yaml
rm -rf train-store
LULC_PROGRESS_SECS=30 timeout -s INT 150 "$LULC" run train.yaml --store train-store 2>&1 \
  | grep -E '^(note|progress|warning|interrupted)' || true
