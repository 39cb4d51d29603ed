#!/usr/bin/env bash
# `make bench`: every measurement of benches/README.md, each beside its reference where one is
# installed (numpy, scikit-image, PyTorch, DVC, Snakemake; missing ones are skipped with a note).
# Long: the full-tile memory run alone takes several minutes. Pick one with `benches/run.sh NAME`
# (engine, index, composite, warp, train, tile, infer, large, stac).
set -euo pipefail
cd "$(dirname "$0")/.."
ONLY=${1:-all}
case $ONLY in all|engine|index|composite|warp|train|tile|infer|large|stac) ;;
  *) echo "unknown benchmark '$ONLY': all, engine, index, composite, warp, train, tile, infer, large or stac" >&2; exit 2;;
esac
PY=${PYTHON:-python3}
want() { [ "$ONLY" = all ] || [ "$ONLY" = "$1" ]; }
has_py() { "$PY" -c "import $1" 2>/dev/null; }
cargo build --release --bin lulc
cargo build --release -p lulc-nodes --examples
EX=target/release/examples

if want engine; then echo "=== engine"; benches/engine.sh; fi
if want index; then
  echo "=== index (lulc, then numpy + scikit-image)"
  $EX/bench_index
  if has_py skimage; then "$PY" benches/index.py; else echo "(scikit-image not installed: skipped)"; fi
fi
if want composite; then
  echo "=== composite (lulc, then numpy nanmedian)"
  $EX/bench_composite
  if has_py numpy; then "$PY" benches/composite.py; else echo "(numpy not installed: skipped)"; fi
fi
if want warp; then
  echo "=== warp (lulc, then gdalwarp)"
  if command -v gdalwarp >/dev/null && [ -x /usr/bin/time ]; then
    dir=$(mktemp -d /tmp/lulc-warp.XXXXXX)
    /usr/bin/time -f "lulc warp: %e s, peak RSS %M kB" $EX/bench_warp "$dir"
    /usr/bin/time -f "gdalwarp: %e s, peak RSS %M kB" gdalwarp -q -overwrite -tr 10 10 -r bilinear \
      -co TILED=YES -co COMPRESS=DEFLATE -co PREDICTOR=2 "$dir/b11_20m.tif" "$dir/gdalwarp.tif"
    rm -rf "$dir"
  else
    echo "(gdalwarp or GNU time not installed: skipped)"
  fi
fi
if want train; then
  echo "=== train throughput (lulc timecnn, then PyTorch on 1 thread)"
  $EX/bench_train --epochs 3
  if has_py torch; then "$PY" benches/train_torch.py --epochs 3 --threads 1
  else echo "(PyTorch not installed: skipped; PYTHON=/path/to/venv/bin/python benches/run.sh train)"; fi
fi
if want tile; then echo "=== composite + index over a 10980 px tile"; benches/tile_memory.sh 10980; fi
if want infer; then echo "=== infer over a 10980 x 1024 px strip, 6 seasons x 30 features"; benches/infer_tile.sh 10980 1024 30; fi
if want stac; then echo "=== STAC API: 20 runs of the catalog spec, requests per band"; benches/stac_repeat.sh 20; fi
if want large; then echo "=== sample of 1,000,000 points; train on 2000 and 10,000 time steps"; benches/large_inputs.sh; fi
