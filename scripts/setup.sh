#!/usr/bin/env bash
# Installs the Debian packages nanobanana needs (only those missing) and builds it (Release) in build/.
# Idempotent: a second run with nothing changed installs nothing and rebuilds nothing.
#   scripts/setup.sh                       # everything (CLI, libraries, tests)
#   TARGETS=nanobanana scripts/setup.sh    # only what the CLI needs (what scripts/nb builds)
#   BUILD_DIR=build-asan CMAKE_ARGS="-DNB_SANITIZE=ON" scripts/setup.sh   # sanitizer build
#   QUIET_BUILD=1: print the build's own percentage lines only (the full log goes to $build_dir/build.log)
# Progress goes to stderr, one line per phase.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
say() { echo "setup: $*" >&2; }

# libhiredis-dev + redis-server: the Redis job queue (serve --queue, worker; its test starts a redis-server).
# ocl-icd-opencl-dev is only a Recommends of libdnnl-dev, but Debian's dnnl-config.cmake needs OpenCL
# (find_dependency(OpenCL)): without it find_package(dnnl) fails.
packages=(build-essential cmake pkg-config libdnnl-dev ocl-icd-opencl-dev libpng-dev libjpeg62-turbo-dev
          zlib1g-dev libfmt-dev libcli11-dev nlohmann-json3-dev libcpp-httplib-dev libgtest-dev libssl-dev
          libhiredis-dev redis-server)

missing=()
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null | grep " install ok installed" |
            cut -d' ' -f1 || true)
for p in "${packages[@]}"; do
  grep -qx "$p" <<<"$installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "[1/3] installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  apt_log=$(mktemp)
  if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
       >"$apt_log" 2>&1; then
    cat "$apt_log" >&2
    say "package installation failed (output above)"
    exit 1
  fi
  rm -f "$apt_log"
fi

# Configure when there is no usable configuration: no cache, or a cache left by a configure that failed
# (then there is no build system file and `cmake --build` would fail forever).
if [ ! -f "$build_dir/CMakeCache.txt" ] || { [ ! -f "$build_dir/Makefile" ] && [ ! -f "$build_dir/build.ninja" ]; }; then
  say "[2/3] configuring $build_dir"
  rm -f "$build_dir/CMakeCache.txt"
  # shellcheck disable=SC2086
  if ! cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >"${build_dir}.configure.log" 2>&1; then
    cat "${build_dir}.configure.log" >&2
    rm -f "$build_dir/CMakeCache.txt"  # the next run configures again
    say "configure failed (log above)"
    exit 1
  fi
  rm -f "${build_dir}.configure.log"
fi

targets=()
for t in ${TARGETS:-}; do targets+=(--target "$t"); done
if [ "${QUIET_BUILD:-}" = "1" ]; then
  # The build's own percentage lines only; everything (warnings, errors) in the log.
  log="$build_dir/build.log"
  if ! cmake --build "$build_dir" -j"$(nproc)" "${targets[@]}" 2>&1 | tee "$log" |
       { grep --line-buffered -E '^\[ *[0-9]+%\] (Building|Linking)' || true; } |
       sed -u -E 's/^(\[ *[0-9]+%\]) (Building|Linking) [A-Z]+ [a-z ]*(object|executable|library) /setup: [3\/3] build \1 /' >&2; then
    tail -n 60 "$log" >&2
    say "build failed (full log: $log)"
    exit 1
  fi
else
  cmake --build "$build_dir" -j"$(nproc)" "${targets[@]}" >&2
fi
