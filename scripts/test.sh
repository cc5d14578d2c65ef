#!/usr/bin/env bash
# Builds everything (installing Debian packages if missing) and runs the whole test suite.
# With CI=true it also runs every libFuzzer target for 6 s (scripts/fuzz.sh; NB_FUZZ_SECONDS=N sets the time and
# runs them without CI) and builds and runs the suite under AddressSanitizer + UndefinedBehaviorSanitizer.
# Tests that need golden data (../shared beside the checkout, or $NB_SHARED_DIR) skip when it is missing;
# the summary at the end says how many.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "test: $*" >&2; }
# Golden test data lives in ../shared beside the checkout; a clone made elsewhere (a temporary directory) finds
# it beside the local repository it was cloned from. Tests read $NB_SHARED_DIR at run time, so this works
# whatever build/ was configured with.
if [ -z "${NB_SHARED_DIR:-}" ]; then
  if [ -d "$root/../shared" ]; then
    NB_SHARED_DIR=$(cd "$root/../shared" && pwd)
  else
    origin=$(git -C "$root" remote get-url origin 2>/dev/null || true)
    if [ -n "$origin" ] && [ -d "$origin/../shared" ]; then NB_SHARED_DIR=$(cd "$origin/../shared" && pwd); fi
  fi
fi
if [ -n "${NB_SHARED_DIR:-}" ]; then
  export NB_SHARED_DIR
  say "golden data: $NB_SHARED_DIR"
else
  say "no golden data (../shared not found, NB_SHARED_DIR unset): golden-data tests will be skipped"
fi

# Runs ctest in build dir $1 (more ctest arguments after it), then says what was skipped for want of data.
run_ctest() {
  local dir=$1
  shift
  local out="$dir/ctest-output.log" status=0
  ctest --test-dir "$dir" --output-on-failure -j"$(nproc)" "$@" 2>&1 | tee "$out" || status=$?
  local skipped
  skipped=$(grep -c '(Skipped)$' "$out" || true)
  if [ "$skipped" -gt 0 ]; then
    # Each skipped test names the file it lacks; one line per missing file here.
    grep -ho 'golden data missing: [^ ]*' "$dir/Testing/Temporary/LastTest.log" | sort -u | sed 's/^/test: /' >&2 || true
  fi
  local missing
  missing=$(grep -c '^golden data missing: ' "$dir/Testing/Temporary/LastTest.log" 2>/dev/null || true)
  say "$(basename "$dir"): $skipped tests skipped, ${missing:-0} of them for missing golden data" \
      "(NB_SHARED_DIR=${NB_SHARED_DIR:-unset})"
  return $status
}

"$root/scripts/setup.sh"
# chromium + playwright-core for the studio's browser test (tests/browser/); without them that test skips,
# except under CI, where they must install.
if ! "$root/scripts/setup-browser.sh"; then
  [ "${CI:-}" != "true" ] || exit 1
  say "browser test dependencies not installed (above): the studio's browser test will skip"
fi
run_ctest "$root/build" --timeout 600
if [ "${CI:-}" = "true" ]; then  # the README's main command must keep working
  out=$(mktemp -d)/readme.png
  "$root/scripts/nb" generate -p "a red circle on a blue background" -o "$out"
  test -s "$out"
fi
if [ "${CI:-}" = "true" ] || [ -n "${NB_FUZZ_SECONDS:-}" ]; then
  # Every libFuzzer target for a short, bounded time (issue 22); a finding fails the run. Its seeds and past
  # findings also replay in both ctest runs (FuzzReplay.*).
  "$root/scripts/fuzz.sh" all "${NB_FUZZ_SECONDS:-6}"  # 12 targets: 72 s of the 45-min CI budget
fi
if [ "${CI:-}" = "true" ] || [ "${NB_TEST_SANITIZE:-}" = "1" ]; then
  BUILD_DIR="$root/build-asan" CMAKE_ARGS="-DNB_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo" "$root/scripts/setup.sh"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    run_ctest "$root/build-asan" --timeout 900 -LE "slow|browser"
fi
