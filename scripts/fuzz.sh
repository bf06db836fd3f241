#!/usr/bin/env bash
# Fuzzes everything that parses outside input (fuzz/fuzz_targets/*.rs) with cargo fuzz
# (libFuzzer), each target for SECONDS (default 300), starting from the committed seed corpus
# (fuzz/corpus/<target>, made from events/ and generated pulls). Needs the nightly toolchain;
# installs cargo-fuzz if missing. New inputs the fuzzer finds go to a scratch corpus, so the
# committed seeds stay small; crashes land in fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh            # every target, 300 s each
#   scripts/fuzz.sh 30 event   # one target, 30 s
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(signature event intake_http pull_summary)
fi

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q '^nightly' || { echo "the nightly toolchain is needed (rustup toolchain install nightly)" >&2; exit 1; }

# Seeds for pull_summary: generated pulls of a few sizes (the spec's shapes, our own values).
mkdir -p fuzz/corpus/pull_summary
for size in 0 1 3; do
  seed="fuzz/corpus/pull_summary/generated-$size"
  [ -s "$seed" ] || cargo run -q -p canopy-sim -- pull --vehicles "$size" --documents "$size" > "$seed"
done

scratch="$(mktemp -d -t canopy-fuzz.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
  mkdir -p "$scratch/$target"
  echo "==> fuzzing $target for ${seconds}s"
  cargo +nightly fuzz run --fuzz-dir fuzz "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 2>&1 \
    | grep -E '^(#[0-9]+ +(DONE|INITED)|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|Test unit written|artifact_prefix)' || true
  if ls "fuzz/artifacts/$target"/crash-* >/dev/null 2>&1; then
    echo "crashes of $target are in fuzz/artifacts/$target" >&2
    exit 1
  fi
done
