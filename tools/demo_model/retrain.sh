#!/bin/sh
# Retrain the demo model into models/demo (see README.md here). Needs Debian's python3-torch, python3-numpy and an
# optimised BLAS (libopenblas0-pthread; the reference BLAS makes training ~10x slower).
# NB_TRAIN_THREADS (default 1) sets torch's thread count; OUT (default models/demo) the output folder.
# V1=path/to/v1/demo.safetensors skips the v1 stages and starts the v2 stages from that file (how the shipped v2
# was made: from the shipped v1, `git show 54b8442:models/demo/demo.safetensors`).
set -eu
cd "$(dirname "$0")/../.."
OUT=${OUT:-models/demo}
export OPENBLAS_NUM_THREADS=1
T=tools/demo_model
if [ -n "${V1:-}" ]; then
  mkdir -p "$OUT" && cp "$V1" "$OUT/demo.safetensors.tmp" && mv "$OUT/demo.safetensors.tmp" "$OUT/demo.safetensors"
else
  # v1 (issue 8): 32x32 images, 4x4 latents
  /usr/bin/python3 $T/train.py --out "$OUT" "$@"
  /usr/bin/python3 $T/finetune_decoder.py "$OUT" 800
  /usr/bin/python3 $T/train.py --out "$OUT" --resume --unet-steps 1000 --lr 3e-4
fi
# v2 (issue 15): 64x64 by default, trained at 64 and 32 px; a VAE that keeps greys grey; more high-noise timesteps
/usr/bin/python3 $T/finetune_decoder.py "$OUT" 300 64,32 5e-4 --grey
/usr/bin/python3 $T/train.py --out "$OUT" --resume --sizes 64,32 --unet-steps 1800 --unet-batch 32 --lr 6e-4 \
  --hi-t 0.25 --snapshot-every 300 --seed-offset 11
/usr/bin/python3 $T/train_lora.py "$OUT" 600 64,32
/usr/bin/python3 $T/parity.py "$OUT"
/usr/bin/python3 $T/evaluate.py "$OUT" --lora
cd "$OUT" && sha256sum demo.safetensors vocab.json merges.txt parity.safetensors lora/demo_monochrome.safetensors > SHA256SUMS
