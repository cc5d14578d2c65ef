#!/usr/bin/env bash
# Installs the Debian packages nanobanana needs (only those missing) and builds it (Release) in build/.
# Idempotent: a second run with nothing changed installs nothing and rebuilds nothing.
#   BUILD_DIR=build-asan CMAKE_ARGS="-DNB_SANITIZE=ON" scripts/setup.sh   # sanitizer build
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
packages=(build-essential cmake pkg-config libdnnl-dev libpng-dev zlib1g-dev libfmt-dev libcli11-dev
          nlohmann-json3-dev libcpp-httplib-dev libgtest-dev libssl-dev)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  # shellcheck disable=SC2086
  cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >&2
fi
cmake --build "$build_dir" -j"$(nproc)" >&2
