#!/usr/bin/env bash
# Builds everything (installing Debian packages if missing) and runs the whole test suite.
# With CI=true it also builds and runs the suite under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
ctest --test-dir "$root/build" --output-on-failure -j"$(nproc)" --timeout 600
if [ "${CI:-}" = "true" ]; then  # the README's main command must keep working
  out=$(mktemp -d)/readme.png
  "$root/scripts/nb" generate -p "a red circle on a blue background" -o "$out"
  test -s "$out"
fi
if [ "${CI:-}" = "true" ] || [ "${NB_TEST_SANITIZE:-}" = "1" ]; then
  BUILD_DIR="$root/build-asan" CMAKE_ARGS="-DNB_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo" "$root/scripts/setup.sh"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir "$root/build-asan" --output-on-failure -j"$(nproc)" --timeout 900 -LE slow
fi
