#!/usr/bin/env bash
# The build's layering check (cmake/check_layers.cmake) on small made-up trees: a clean tree passes; an upward
# include, a model file that reaches for memory policy, and a pipeline file that includes a backend's private
# header each fail the check, naming the file.
set -euo pipefail
src=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# check NAME FILE LINE EXPECT: a tree holding only FILE with LINE; EXPECT "ok" or the message it must print.
check() {
  local name=$1 file=$2 line=$3 expect=$4 out status=0
  rm -rf "$tmp/tree" && mkdir -p "$tmp/tree/$(dirname "$file")"
  printf '%s\n' "$line" >"$tmp/tree/$file"
  out=$(cmake -DSRC="$tmp/tree" -DSTAMP="$tmp/stamp" -P "$src/cmake/check_layers.cmake" 2>&1) || status=$?
  out=$(tr -s ' \n' '  ' <<<"$out")  # CMake wraps long messages
  if [ "$expect" = ok ]; then
    if [ $status -ne 0 ]; then echo "FAIL $name: rejected a clean tree: $out"; fail=1; else echo "ok   $name"; fi
  elif [ $status -eq 0 ] || ! grep -qF "$expect" <<<"$out"; then
    echo "FAIL $name: expected an error containing '$expect', got status $status: $out"; fail=1
  else
    echo "ok   $name"
  fi
}

check clean-model src/models/unet/model.cpp '#include "backend/ops.h"' ok
check nn-may-use-policy src/models/nn/weight_set.cpp '#include "backend/weights.h"' ok
check pipeline-may-use-context src/pipeline/engine.cpp '#include "backend/context.h"' ok
check upward src/core/tensor.cpp '#include "pipeline/sd_model.h"' \
  "src/core/tensor.cpp: layer 'core' may not include 'pipeline/'"
check model-policy src/models/unet/model.cpp '#include "backend/weights.h"' \
  "src/models/unet/model.cpp: model files use only the math ops of backend/ops.h"
check model-context src/models/vae/model.cpp '#include "backend/context.h"' \
  "src/models/vae/model.cpp: model files use only the math ops of backend/ops.h"
check private-backend src/pipeline/bench.cpp '#include "backend/cpu/kernels.h"' \
  "src/pipeline/bench.cpp: a backend's own headers are private to src/backend"
exit $fail
