#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -DTCEMU_FUZZ=ON) into build-fuzz/, writes their seed corpora from real
# inputs (tcemu-fuzz-seeds) and runs each target for the given time; prints libFuzzer's figures per target.
# Exits non-zero if any target found a bug (its input is saved as build-fuzz/artifacts/<target>-crash-*).
# docs/hardening.md describes the targets.
# Usage: scripts/fuzz.sh [seconds-per-target (default 600)] [target ...]   (default: every target)
#        FUZZ_PARALLEL=2 scripts/fuzz.sh ...                                (two targets at a time)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-600}"
shift || true
TARGETS=("$@")
if ((${#TARGETS[@]} == 0)); then TARGETS=(fuzz_model_parse fuzz_isa_decode fuzz_assembly fuzz_npy_parse); fi
PARALLEL="${FUZZ_PARALLEL:-1}"
BUILD_DIR=build-fuzz

# clang with libFuzzer and the sanitizer runtimes (Debian bookworm: clang 14; libclang-rt-14-dev holds
# libclang_rt.fuzzer*.a), and what tcemu_common needs. Not in scripts/setup.sh: only fuzzing needs clang.
PACKAGES=(clang libclang-rt-14-dev cmake ninja-build pkg-config libfmt-dev)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "fuzz: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DTCEMU_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++
fi
cmake --build "$BUILD_DIR" --parallel "$(nproc)" --target "${TARGETS[@]}" tcemu-fuzz-seeds

# Seeds are regenerated every run (they follow the code); the corpus of what each target found is kept in
# build-fuzz/corpus/<target> and grows from run to run.
rm -rf "$BUILD_DIR/seeds"
"$BUILD_DIR/bin/tcemu-fuzz-seeds" "$BUILD_DIR/seeds"
mkdir -p "$BUILD_DIR/corpus" "$BUILD_DIR/artifacts" "$BUILD_DIR/logs"

# Options for every target:
#   -timeout=10           an input that takes 10 s is a hang (they take microseconds)
#   -rss_limit_mb=2048    the process may not grow past 2 GiB
#   -malloc_limit_mb=256  and no single allocation may exceed 256 MiB: inputs are at most -max_len (64 KiB)
#                         and the loaders promise to allocate a small multiple of their input
#   -use_value_profile=1  coverage from the operands of comparisons: the loaders compare offsets, counts
#                         and sizes against computed values
# and per target its -max_len (a decoder input is one 64-byte instruction; the rest reach every rule well
# within their seeds' sizes) and, for the assembly, the dictionary of its keywords.
options_for() {
  case "$1" in
    fuzz_isa_decode) echo "-max_len=80" ;;
    fuzz_assembly) echo "-max_len=65536 -dict=$BUILD_DIR/seeds/assembly.dict" ;;
    *) echo "-max_len=65536" ;;
  esac
}
seeds_for() { echo "$BUILD_DIR/seeds/${1#fuzz_}"; }

run_target() {
  local t="$1"
  mkdir -p "$BUILD_DIR/corpus/$t"
  # shellcheck disable=SC2046
  "$BUILD_DIR/bin/$t" -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=256 -use_value_profile=1 $(options_for "$t") \
    -artifact_prefix="$BUILD_DIR/artifacts/$t-" "$BUILD_DIR/corpus/$t" "$(seeds_for "$t")" \
    >"$BUILD_DIR/logs/$t.log" 2>&1
}

summary() {
  local t="$1" rc="$2" log="$BUILD_DIR/logs/$1.log"
  local last runs execs rate rss
  last=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: ' | tail -n 1 || true)
  runs=$(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
  echo "== $t: exit $rc, ${execs:-?} executions, ${rate:-?} exec/s, peak RSS ${rss:-?} MB"
  echo "   ${runs:-(no 'Done' line)}"
  echo "   last status: ${last:-(none)}"
  if ((rc != 0)); then
    echo "   FOUND A BUG: see $log and $BUILD_DIR/artifacts/$t-*"
    grep -E 'ERROR: |SUMMARY: |fuzz: property violated|runtime error' "$log" | head -n 5 | sed 's/^/   /'
  fi
}

echo "fuzz: ${#TARGETS[@]} targets x ${SECONDS_PER_TARGET} s, $PARALLEL at a time; logs in $BUILD_DIR/logs"
declare -A pid_of
failed=0
for ((i = 0; i < ${#TARGETS[@]}; i += PARALLEL)); do
  batch=("${TARGETS[@]:i:PARALLEL}")
  for t in "${batch[@]}"; do
    run_target "$t" &
    pid_of[$t]=$!
  done
  for t in "${batch[@]}"; do
    rc=0
    wait "${pid_of[$t]}" || rc=$?
    summary "$t" "$rc"
    if ((rc != 0)); then failed=1; fi
  done
done
exit "$failed"
