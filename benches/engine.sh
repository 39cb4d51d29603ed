#!/usr/bin/env bash
# Engine benchmarks (issue 2 bars), with DVC and Snakemake measured side by side when installed.
#
#   benches/engine.sh            # needs a release build: cargo build --release --bin lulc
#
# 1. `lulc plan` on a generated 20,160-step spec (80 tiles x 6 years x 42 nodes), warm store.
# 2. A no-op `lulc run` of the same spec.
# 3. Engine overhead per executed step: 2,000 trivial steps from an empty store, --jobs 1.
# 4. Reference: no-op re-run of a 3-stage pipeline with DVC (`dvc repro`) and Snakemake.
set -euo pipefail
cd "$(dirname "$0")/.."
LULC=${LULC:-$PWD/target/release/lulc}
WORK=$(mktemp -d /tmp/lulc-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export LULC_TEST_KINDS=1
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $($LULC --version)"

python3 benches/gen_spec.py "$WORK/big.yaml" 80 6 42
steps=$($LULC validate "$WORK/big.yaml" | sed -E 's/.* ([0-9]+) steps/\1/')
echo "== generated spec: $steps steps"
start=$(date +%s.%N)
$LULC run "$WORK/big.yaml" --store "$WORK/store" > /dev/null 2>&1
end=$(date +%s.%N)
echo "first (cold) run of $steps steps: $(echo "$end - $start" | bc) s"
hyperfine --warmup 1 --runs 5 --export-markdown "$WORK/plan.md" \
  "$LULC plan $WORK/big.yaml --store $WORK/store" \
  "$LULC run $WORK/big.yaml --store $WORK/store" 2>&1 | grep -E "Benchmark|Time|Range"
/usr/bin/time -f "peak RSS of a no-op run: %M KiB" $LULC run "$WORK/big.yaml" --store "$WORK/store" 2>&1 | tail -1

echo "== engine overhead per executed step (2,000 trivial steps, empty store each time)"
cat > "$WORK/flat.yaml" <<'YAML'
name: flat
params: { ids: 1..2000 }
nodes:
  s:
    kind: emit
    for_each: { id: ids }
    params: { value: "${id}" }
YAML
for jobs in 1 2; do
  total=0
  for i in 1 2 3; do
    rm -rf "$WORK/flat-store"
    start=$(date +%s.%N)
    $LULC run "$WORK/flat.yaml" --store "$WORK/flat-store" --jobs $jobs > /dev/null 2>&1
    end=$(date +%s.%N)
    total=$(echo "$total + $end - $start" | bc)
  done
  echo "--jobs $jobs: $(python3 -c "print(f'{$total / 3 / 2000 * 1000:.3f}')") ms per executed step (mean of 3 runs; each step writes and fsyncs 2 blobs and commits 1 SQLite row)"
done

echo "== reference: no-op re-run of a 3-stage pipeline"
mkdir -p "$WORK/ref" && cd "$WORK/ref"
printf 'a\n' > input.txt
if command -v snakemake >/dev/null; then
  cat > Snakefile <<'SMK'
rule all:
    input: "c.txt"
rule a:
    input: "input.txt"
    output: "a.txt"
    shell: "cp {input} {output}"
rule b:
    input: "a.txt"
    output: "b.txt"
    shell: "cp {input} {output}"
rule c:
    input: "b.txt"
    output: "c.txt"
    shell: "cp {input} {output}"
SMK
  snakemake -c1 -q > /dev/null 2>&1
  hyperfine --warmup 1 --runs 5 "snakemake -c1 -q" 2>&1 | grep -E "Time|Range" | sed 's/^/snakemake (3 steps): /'
else
  echo "snakemake not installed (pip install snakemake)"
fi
if command -v dvc >/dev/null; then
  git init -q . && dvc init -q
  dvc stage add -q -n a -d input.txt -o a.txt "cp input.txt a.txt"
  dvc stage add -q -n b -d a.txt -o b.txt "cp a.txt b.txt"
  dvc stage add -q -n c -d b.txt -o c.txt "cp b.txt c.txt"
  dvc repro -q > /dev/null 2>&1
  hyperfine --warmup 1 --runs 5 "dvc repro -q" 2>&1 | grep -E "Time|Range" | sed 's/^/dvc (3 steps): /'
else
  echo "dvc not installed (pip install dvc)"
fi
