#!/usr/bin/env bash
# `make test`: every test of the workspace, then one summary line summed over all test binaries
# (the last binary cargo runs is often one with no tests, e.g. doc tests or an example).
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets 2>&1 | tee -a "$log" || status=1
cargo test --workspace --doc 2>&1 | tee -a "$log" || status=1
passed=$(awk '/^test result:/ { for (i = 1; i < NF; i++) if ($(i+1) ~ /^passed/) s += $i } END { print s + 0 }' "$log")
failed=$(awk '/^test result:/ { for (i = 1; i < NF; i++) if ($(i+1) ~ /^failed/) s += $i } END { print s + 0 }' "$log")
echo
echo "tests: ${passed:-0} passed, ${failed:-0} failed"
exit $status
