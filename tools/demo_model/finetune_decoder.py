"""VAE fine-tuning stages. v1: train only the decoder (post_quant_conv + decoder) on the frozen encoder's latent means;
v2 (--grey): encoder and decoder at 64 + 32 px with greyscale scenes (finetune_v2); --noisy S (tried for v3, not
kept, see README.md): the decoder on noisy latents (finetune_v3).

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tools/demo_model/finetune_decoder.py models/demo [steps] [sizes] [lr] [--grey | --noisy S]

Decoder only: the latents the UNet was trained on do not change, so this sharpens colours and edges without
retraining the UNet. sizes: comma-separated image sizes, each step trains on 16 images split evenly over them
(v1: "32", plain MSE; any other list weights shape pixels 4x as train.py's VAE stage does). retrain.sh runs
`models/demo 800` (v1) and `models/demo 300 64,32 5e-4 --grey` (v2). Rewrites <dir>/demo.safetensors in place (all
other tensors and the metadata are kept).
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


def finetune_v2(folder, path, state, meta, vae, steps, sizes, lr, rng, t0):
    """v2 (--grey): encoder and decoder, 1/4 of the images in greyscale (the v1 VAE decoded grey scenes as green or
    pink, so the monochrome LoRA had no grey latents to aim at), shape pixels weighted 4x; the encoder's latents
    of coloured scenes are held to the starting encoder's (L2, scaled latent units) so the UNet keeps fitting."""
    import copy
    from train_lora import greyscale  # noqa: E402
    ref = copy.deepcopy(vae).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    n = 16 // len(sizes)
    for step in range(steps):
        opt.zero_grad()
        for size in sizes:
            _, x = train.images(rng, n, size)
            x[: n // 4] = greyscale(x[: n // 4])
            mean, _ = vae.moments(x)
            with torch.no_grad():
                anchor_ref = ref.moments(x[n // 4:])[0]
            bg = x[:, :, :1, :1]
            weight = 1.0 + 3.0 * ((x - bg).abs().sum(1, keepdim=True) > 0.05).float()
            rec = (weight * (vae.decode(mean) - x).square()).mean()
            anchor = ((mean[n // 4:] - anchor_ref) * train.SCALE).square().mean()
            ((rec + anchor) / len(sizes)).backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"vae {step} rec {rec.item():.5f} anchor {anchor.item():.5f} {time.time() - t0:.0f} s", flush=True)
    tensors = {k: v for k, v in state.items()}
    for k, v in vae.state_dict().items():
        tensors["first_stage_model." + k] = v.detach().to(torch.float16)
    train.write_safetensors(path, tensors, meta)


def finetune_v3(path, state, meta, vae, steps, sizes, lr, noise, rng, t0):
    """v3 (--noisy S): the decoder only (the encoder, hence the UNet's latent space, is kept), on latent means plus
    Gaussian noise of a per-image std uniform in [0, S] (scaled latent units, where latents have unit std), so
    that the slightly-off latents a sampler ends on still decode to clean shapes over a flat background; 1/4 of
    the images greyscale (as v2, so the monochrome LoRA keeps its grey), shape pixels weighted 4x."""
    from train_lora import greyscale  # noqa: E402
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    for p in vae.encoder.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    n = 16 // len(sizes)
    for step in range(steps):
        opt.zero_grad()
        for size in sizes:
            _, x = train.images(rng, n, size)
            x[: n // 4] = greyscale(x[: n // 4])
            with torch.no_grad():
                mean, _ = vae.moments(x)
                s = torch.from_numpy(rng.uniform(0, noise, size=(n, 1, 1, 1)).astype(np.float32))
                z = mean + torch.randn_like(mean) * s / train.SCALE
            bg = x[:, :, :1, :1]
            weight = 1.0 + 3.0 * ((x - bg).abs().sum(1, keepdim=True) > 0.05).float()
            rec = (weight * (vae.decode(z) - x).square()).mean()
            (rec / len(sizes)).backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"decoder {step} rec {rec.item():.5f} {time.time() - t0:.0f} s", flush=True)
    tensors = {k: v for k, v in state.items()}
    for k, v in vae.state_dict().items():
        tensors["first_stage_model." + k] = v.detach().to(torch.float16)
    train.write_safetensors(path, tensors, meta)


def main(folder, steps, sizes=(32,), lr=1e-3, grey=False, noisy=0.0):
    torch.set_num_threads(int(os.environ.get("NB_TRAIN_THREADS", "1")))
    torch.manual_seed(77)
    rng = np.random.default_rng(77)
    path = os.path.join(folder, "demo.safetensors")
    state, meta = read_safetensors(path)
    vae = AutoencoderKL(json.loads(meta["vae_ddconfig"]))
    vae.load_state_dict(sub(state, "first_stage_model."))
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    t0 = time.time()
    if noisy > 0:
        return finetune_v3(path, state, meta, vae, steps, sizes, lr, noisy, rng, t0)
    if grey:
        return finetune_v2(folder, path, state, meta, vae, steps, sizes, lr, rng, t0)
    for step in range(steps):
        opt.zero_grad()
        for size in sizes:
            _, x = train.images(rng, 16 // len(sizes), size)
            with torch.no_grad():
                mean, _ = vae.moments(x)
            err = (vae.decode(mean) - x).square()
            if sizes != (32,):  # v2: shape pixels weigh 4x (v1 stage: plain MSE)
                bg = x[:, :, :1, :1]
                err = err * (1.0 + 3.0 * ((x - bg).abs().sum(1, keepdim=True) > 0.05).float())
            loss = err.mean() / len(sizes)
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
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 800,
         tuple(int(v) for v in sys.argv[3].split(",")) if len(sys.argv) > 3 else (32,),
         float(sys.argv[4]) if len(sys.argv) > 4 else 1e-3, len(sys.argv) > 5 and sys.argv[5] == "--grey",
         float(sys.argv[6]) if len(sys.argv) > 6 and sys.argv[5] == "--noisy" else 0.0)
