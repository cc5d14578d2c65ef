#!/bin/sh
# Retrain the demo model from scratch into models/demo (see README.md here). Needs Debian's python3-torch,
# python3-numpy and an optimised BLAS (libopenblas0-pthread; the reference BLAS makes training ~10x slower).
# NB_TRAIN_THREADS (default 1) sets torch's thread count; OUT (default models/demo) the output folder.
set -eu
cd "$(dirname "$0")/../.."
OUT=${OUT:-models/demo}
export OPENBLAS_NUM_THREADS=1
/usr/bin/python3 tools/demo_model/train.py --out "$OUT" "$@"
/usr/bin/python3 tools/demo_model/finetune_decoder.py "$OUT" 800
/usr/bin/python3 tools/demo_model/train.py --out "$OUT" --resume --unet-steps 1000 --lr 3e-4
/usr/bin/python3 tools/demo_model/train_lora.py "$OUT" 600
/usr/bin/python3 tools/demo_model/parity.py "$OUT"
/usr/bin/python3 tools/demo_model/evaluate.py "$OUT"
cd "$OUT" && sha256sum demo.safetensors vocab.json merges.txt parity.safetensors lora/demo_monochrome.safetensors > SHA256SUMS
