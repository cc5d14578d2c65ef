#!/usr/bin/env bash
# Installs the build into a temporary prefix, compiles tests/capi/capi_check.c against the installed header and
# library through pkg-config (as an embedder would), and runs it on the model given.
#   run_capi_check.sh BUILD_DIR MODEL [EXTRA_CFLAGS]
set -euo pipefail
build=$1 model=$2 extra=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" > "$prefix/install.log"
pc=$(dirname "$(find "$prefix" -name nanobanana.pc | head -1)")
flags=$(PKG_CONFIG_PATH=$pc pkg-config --cflags --libs nanobanana)
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror $extra -o "$prefix/capi_check" "$here/capi_check.c" $flags -pthread
libdir=$(PKG_CONFIG_PATH=$pc pkg-config --variable=libdir nanobanana)
LD_LIBRARY_PATH=$libdir "$prefix/capi_check" "$model"
