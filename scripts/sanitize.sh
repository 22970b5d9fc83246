#!/usr/bin/env bash
# Builds every target with AddressSanitizer + UndefinedBehaviorSanitizer (gcc, -DTCEMU_SANITIZE=ON) into
# build-asan/ and runs the whole ctest suite there; any sanitizer report fails its test. docs/hardening.md.
# Usage: scripts/sanitize.sh [extra ctest args, e.g. -L common]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=build-asan

scripts/setup.sh --deps-only

# -O1: about twice as fast as -O0 under ASan and still keeps every check; -g1: line tables for the reports'
# stack traces at a fraction of full -g's compile time and memory (the verilated RTL is large). NDEBUG as in
# the Release build, so that the suite runs the same code paths as scripts/test.sh.
if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DTCEMU_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG"
fi
start=$SECONDS
cmake --build "$BUILD_DIR" --parallel "$(nproc)"
echo "sanitize: build took $((SECONDS - start)) s"

# ASan options, each for a reason:
#   halt_on_error=1                 stop at the first report (the default for ASan; explicit for the record).
#   detect_stack_use_after_return=0 SC_THREADs run on coroutine stacks, and SystemC announces each switch
#                                   to ASan without a place to save the fake stack (where this check keeps
#                                   frames after they return) of the thread it leaves, which tells ASan that
#                                   thread is finished: with the check on, ASan frees the fake frames of
#                                   suspended SC_THREADs and the first device test crashes in a switch.
#                                   (gcc 12's default is 0; stated so that a newer default cannot turn it on.)
#   detect_leaks=1                  LeakSanitizer at exit (the default on x86_64 Linux, stated for the record).
#   check_initialization_order=1, strict_init_order=1
#                                   report a global whose dynamic initialiser reads another translation unit's
#                                   global before that one is initialised.
#   strict_string_checks=1          str*/mem* interceptors check the whole string, not only the bytes read.
# UBSan: every check is built with -fno-sanitize-recover, so a finding already aborts the test;
# print_stacktrace=1 says where.
# Options already in the environment come last, so they win.
asan="halt_on_error=1:detect_stack_use_after_return=0:detect_leaks=1"
asan+=":check_initialization_order=1:strict_init_order=1:strict_string_checks=1"
export ASAN_OPTIONS="$asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

cd "$BUILD_DIR"
start=$SECONDS
rc=0
ctest --output-on-failure --parallel "$(nproc)" "$@" || rc=$?
echo "sanitize: tests took $((SECONDS - start)) s"
exit "$rc"
