#!/usr/bin/env bash
# The Slurm executor on the local 3-node Slurm (scripts/slurm-local.sh), side by side with the
# local executor and, when it installs, Snakemake's Slurm executor plugin.
#
#   cargo build --release --bin lulc && benches/slurm.sh [TILES YEARS DEPTH]
#
# 1. Scheduler load: the generated spec (benches/gen_spec.py, default 80 x 6 x 42 = 20,160
#    trivial steps) from an empty store: wall time, sbatch and squeue calls (lulc's own
#    counters, checked against a wrapper on PATH that logs every call), per-step overhead;
#    the same spec on the local executor.
# 2. The demo chain (64 px, 2020-2022) from an empty store: local --jobs 2 vs Slurm.
# 3. Snakemake + snakemake-executor-plugin-slurm on the same cluster: SNAKE_JOBS trivial
#    jobs (default 200) in chains of 10, with its sbatch/squeue/sacct calls. Without slurmdbd
#    there is no sacct, so its status command is squeue (MinJobAge=300 keeps ended jobs listed).
set -euo pipefail
cd "$(dirname "$0")/.."
LULC=${LULC:-$PWD/target/release/lulc}
TILES=${1:-80} YEARS=${2:-6} DEPTH=${3:-42}
SNAKE_JOBS=${SNAKE_JOBS:-200}
SECTIONS=${SECTIONS:-1 2 3}   # which of the three to run
section() { [[ " $SECTIONS " == *" $1 "* ]]; }
WORK=$(mktemp -d /tmp/lulc-slurm-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
eval "$(scripts/slurm-local.sh start)"
echo "machine: $(nproc) cores; $(sinfo --version); nodes: $(sinfo -h -o '%D %c CPUs each')"

# Every scheduler call goes through a logging wrapper, for lulc and Snakemake alike.
mkdir -p "$WORK/bin"
for cmd in sbatch squeue sacct scancel scontrol; do
  real=$(command -v $cmd || echo /bin/false)
  printf '#!/bin/sh\necho %s >> %s/calls.log\nexec %s "$@"\n' "$cmd" "$WORK" "$real" > "$WORK/bin/$cmd"
  chmod +x "$WORK/bin/$cmd"
done
export PATH=$WORK/bin:$PATH
calls() { sort "$WORK/calls.log" 2>/dev/null | uniq -c | awk '{printf "%s=%s ", $2, $1}'; : > "$WORK/calls.log"; }
wall() { local s=$(date +%s.%N); "$@" >/dev/null 2>&1 || echo "failed: $*" >&2; echo "$(date +%s.%N) - $s" | bc; }

export LULC_TEST_KINDS=1
python3 benches/gen_spec.py "$WORK/big.yaml" "$TILES" "$YEARS" "$DEPTH"
steps=$($LULC validate "$WORK/big.yaml" | sed -E 's/.* ([0-9]+) steps/\1/')
cat > "$WORK/profile.yaml" <<'YAML'
resources: { mem_mb: 500, time_min: 30 }
steps_per_task: 50
max_queued: 5000
poll_min_s: 1
poll_max_s: 10
YAML

if section 1; then
echo "== 1. $steps trivial steps, empty store"
t=$(wall $LULC run "$WORK/big.yaml" --store "$WORK/local" --jobs 2)
echo "local --jobs 2: ${t} s"
: > "$WORK/calls.log"
s=$(date +%s.%N)
$LULC run "$WORK/big.yaml" --store "$WORK/slurm" --executor slurm --profile "$WORK/profile.yaml" --json \
  > "$WORK/slurm.json" 2> "$WORK/slurm.err" || { tail "$WORK/slurm.err"; exit 1; }
t=$(echo "$(date +%s.%N) - $s" | bc)
echo "slurm (3 nodes x 2 CPUs, 50 steps per array task): ${t} s; wrapper counted: $(calls)"
python3 - "$WORK/slurm.json" "$steps" "$t" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1])); steps = int(sys.argv[2]); t = float(sys.argv[3])
ex = doc["executor"]
print(f"lulc's counters: {ex['sbatch']} sbatch ({steps / max(ex['sbatch'], 1):.0f} steps per call), "
      f"{ex['squeue']} squeue, {ex['sbatch_test_only']} sbatch --test-only, {ex['jobs']} array tasks; "
      f"{1000 * t / steps:.1f} ms wall per step")
PY
diff <(python3 -c "import json,sys;d=json.load(open('$WORK/slurm.json'));print('\n'.join(sorted(s['id']+' '+json.dumps(s['outputs'],sort_keys=True) for s in d['steps'])))") \
     <($LULC run "$WORK/big.yaml" --store "$WORK/local" --json 2>/dev/null | python3 -c "import json,sys;d=json.load(sys.stdin);print('\n'.join(sorted(s['id']+' '+json.dumps(s['outputs'],sort_keys=True) for s in d['steps'])))") \
  >/dev/null && echo "outputs: identical to the local run's"
fi

if section 2; then
echo "== 2. the demo chain (64 px, 2020-2022), empty store"
unset LULC_TEST_KINDS
cat > "$WORK/demo-profile.yaml" <<'YAML'
resources: { mem_mb: 1300, time_min: 60 }
poll_min_s: 1
poll_max_s: 5
YAML
t=$(wall $LULC run pipelines/demo.yaml --set size=64 --set years=2020..2022 --store "$WORK/demo-local" --jobs 2)
echo "local --jobs 2: ${t} s"
: > "$WORK/calls.log"
t=$(wall $LULC run pipelines/demo.yaml --set size=64 --set years=2020..2022 --store "$WORK/demo-slurm" \
  --executor slurm --profile "$WORK/demo-profile.yaml")
echo "slurm: ${t} s; $(calls)"
fi

section 3 || exit 0
echo "== 3. Snakemake with its Slurm executor plugin: $SNAKE_JOBS trivial jobs"
if [ ! -x /tmp/lulc-snake-venv/bin/snakemake ]; then
  python3 -m venv /tmp/lulc-snake-venv >/dev/null && \
    /tmp/lulc-snake-venv/bin/pip install -q snakemake snakemake-executor-plugin-slurm >/dev/null 2>&1 || true
fi
SNAKE=/tmp/lulc-snake-venv/bin/snakemake
if [ -x "$SNAKE" ]; then
  chains=$((SNAKE_JOBS / 10))
  mkdir -p "$WORK/snake" && cd "$WORK/snake"
  cat > Snakefile <<EOF
CHAINS = range($chains)
rule all:
    input: expand("d9/{c}.txt", c=CHAINS)
rule first:
    output: "d0/{c}.txt"
    shell: "echo {wildcards.c} > {output}"
EOF
  for d in $(seq 1 9); do
    printf 'rule s%s:\n    input: "d%s/{c}.txt"\n    output: "d%s/{c}.txt"\n    shell: "cat {input} > {output}"\n' \
      "$d" $((d - 1)) "$d" >> Snakefile
  done
  : > "$WORK/calls.log"
  t=$(wall $SNAKE --executor slurm --jobs 100 --default-resources mem_mb=500 runtime=30 \
    --latency-wait 5 --slurm-status-command squeue --quiet all)
  echo "snakemake: ${t} s for $((chains * 10)) jobs; $(calls)"
  cd - >/dev/null
else
  echo "snakemake could not be installed here: skipped"
fi
