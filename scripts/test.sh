#!/usr/bin/env bash
# Builds everything (installing Debian packages if missing) and runs the whole test suite.
# With CI=true it also builds and runs the suite under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# Golden test data lives in ../shared beside the checkout; a clone made elsewhere (a temporary directory) finds
# it beside the local repository it was cloned from.
shared_args=""
if [ ! -d "$root/../shared" ]; then
  origin=$(git -C "$root" remote get-url origin 2>/dev/null || true)
  if [ -n "$origin" ] && [ -d "$origin/../shared" ]; then
    shared_args="-DNB_SHARED_DIR=$(cd "$origin/../shared" && pwd)"
  fi
fi
CMAKE_ARGS="${CMAKE_ARGS:-} $shared_args" "$root/scripts/setup.sh"
ctest --test-dir "$root/build" --output-on-failure -j"$(nproc)" --timeout 600
if [ "${CI:-}" = "true" ]; then  # the README's main command must keep working
  out=$(mktemp -d)/readme.png
  "$root/scripts/nb" generate -p "a red circle on a blue background" -o "$out"
  test -s "$out"
fi
if [ "${CI:-}" = "true" ] || [ "${NB_TEST_SANITIZE:-}" = "1" ]; then
  BUILD_DIR="$root/build-asan" CMAKE_ARGS="-DNB_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo $shared_args" "$root/scripts/setup.sh"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir "$root/build-asan" --output-on-failure -j"$(nproc)" --timeout 900 -LE slow
fi
