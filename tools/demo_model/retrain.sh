#!/bin/sh
# Retrain the demo model from scratch into models/demo (see README.md here). Needs Debian's python3-torch,
# python3-numpy and an optimised BLAS (libopenblas0-pthread; the reference BLAS makes training ~10x slower).
set -eu
cd "$(dirname "$0")/../.."
export OPENBLAS_NUM_THREADS=1
/usr/bin/python3 tools/demo_model/train.py --out models/demo "$@"
/usr/bin/python3 tools/demo_model/finetune_decoder.py models/demo 800
/usr/bin/python3 tools/demo_model/parity.py models/demo
cd models/demo && sha256sum demo.safetensors vocab.json merges.txt parity.safetensors > SHA256SUMS
