"""Second VAE stage: train only the decoder (post_quant_conv + decoder) on the frozen encoder's latent means.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tools/demo_model/finetune_decoder.py models/demo [steps]

The latents the UNet was trained on do not change, so this sharpens colours without retraining the UNet.
Rewrites <dir>/demo.safetensors in place (all other tensors and the metadata are kept).
"""
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modules import AutoencoderKL  # noqa: E402
from parity import read_safetensors, sub  # noqa: E402
import train  # noqa: E402


def main(folder, steps):
    torch.set_num_threads(int(os.environ.get("NB_TRAIN_THREADS", "1")))
    torch.manual_seed(77)
    rng = np.random.default_rng(77)
    path = os.path.join(folder, "demo.safetensors")
    state, meta = read_safetensors(path)
    vae = AutoencoderKL(json.loads(meta["vae_ddconfig"]))
    vae.load_state_dict(sub(state, "first_stage_model."))
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps, pct_start=0.05)
    t0 = time.time()
    for step in range(steps):
        _, x = train.images(rng, 16)
        with torch.no_grad():
            mean, _ = vae.moments(x)
        loss = (vae.decode(mean) - x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"decoder {step} mse {loss.item():.5f} {time.time() - t0:.0f} s", flush=True)
    tensors = {k: v for k, v in state.items()}
    for k, v in vae.state_dict().items():
        tensors["first_stage_model." + k] = v.detach().to(torch.float16)
    train.write_safetensors(path, tensors, meta)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 800)
