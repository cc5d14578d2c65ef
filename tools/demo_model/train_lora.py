"""Train the demo LoRA: a "monochrome" style (every scene in shades of grey) on top of the demo model.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tools/demo_model/train_lora.py models/demo [steps] [sizes]

(v2: `train_lora.py models/demo 600 64,32`, on the v2 VAE, which decodes grey scenes as grey.)

The base model stays frozen; rank-8 LoRA pairs on every transformer Linear and the 1x1 proj_in/proj_out convs of
the UNet learn to denoise towards greyscale renderings of the usual scenes and captions (no trigger word: a
style LoRA). Written in kohya's format with LDM module names ("lora_unet_input_blocks_1_1_proj_in.lora_down
.weight", ".lora_up.weight", ".alpha"), which A1111 and the engine map to the checkpoint's weights, to
<dir>/lora/demo_monochrome.safetensors (fp16).
"""
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import domain  # noqa: E402
import train  # noqa: E402
from parity import load  # noqa: E402
from tokenizer import Tokenizer  # noqa: E402

RANK, ALPHA = 8, 8.0
LUMA = torch.tensor([0.299, 0.587, 0.114])


class LoRA(nn.Module):
    """y = base(x) + (alpha / rank) * up(down(x)); up starts at zero, so training starts from the base model."""

    def __init__(self, base, mult=1.0):
        super().__init__()
        self.base = base
        self.conv = isinstance(base, nn.Conv2d)
        fin = base.in_channels if self.conv else base.in_features
        fout = base.out_channels if self.conv else base.out_features
        self.down = nn.Parameter(torch.randn(RANK, fin) / fin ** 0.5)
        self.up = nn.Parameter(torch.zeros(fout, RANK))
        self.scale = ALPHA / RANK * mult  # mult: the LoRA weight the training targets (the file stores up, down)

    def forward(self, x):
        if self.conv:  # 1x1 conv: the same product over the channel axis
            d = torch.einsum("rc,bchw->brhw", self.down, x)
            return self.base(x) + self.scale * torch.einsum("or,brhw->bohw", self.up, d)
        return self.base(x) + self.scale * (x @ self.down.t()) @ self.up.t()


def targets(unet):
    """(module path, module) of every LoRA target: transformer Linears and 1x1 proj_in/proj_out."""
    out = []
    for name, mod in unet.named_modules():
        if ".transformer_blocks." in name and isinstance(mod, nn.Linear):
            out.append((name, mod))
        elif name.endswith((".proj_in", ".proj_out")) and isinstance(mod, nn.Conv2d):
            out.append((name, mod))
    return out


def inject(unet, mult=1.0):
    loras = {}
    for name, mod in targets(unet):
        parent, child = name.rsplit(".", 1)
        loras[name] = LoRA(mod, mult)
        setattr(unet.get_submodule(parent), child, loras[name])  # also replaces Sequential entries ("0")
    return loras


def greyscale(x):
    """[B,3,H,W] in [-1,1] -> the same scenes in grey (Rec. 601 luma in all channels)."""
    y = (x * LUMA[None, :, None, None]).sum(1, keepdim=True)
    return y.expand_as(x).contiguous()


@torch.no_grad()
def dataset(vae, n, seed, size=32):
    rng = np.random.default_rng(seed)
    scenes, lats = [], []
    for i in range(0, n, 64):
        s, x = train.images(rng, min(64, n - i), size)
        scenes += s
        lats.append(vae.moments(greyscale(x))[0] * train.SCALE)
    return scenes, torch.cat(lats)


def export(path, loras):
    tensors = {}
    for name, l in loras.items():
        key = "lora_unet_" + name.replace(".", "_")
        down, up = l.down.detach(), l.up.detach()
        if l.conv:
            down, up = down[:, :, None, None], up[:, :, None, None]
        tensors[key + ".lora_down.weight"] = down.to(torch.float16)
        tensors[key + ".lora_up.weight"] = up.to(torch.float16)
        tensors[key + ".alpha"] = torch.tensor(ALPHA, dtype=torch.float32)
    meta = {"ss_network_module": "networks.lora", "ss_network_dim": str(RANK), "ss_network_alpha": str(ALPHA),
            "ss_output_name": "demo_monochrome", "ss_base_model_version": "sd_v1",
            "description": "nanobanana demo LoRA: monochrome style (tools/demo_model/train_lora.py)"}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    train.write_safetensors(path, tensors, meta)


def main(folder, steps, sizes=(32,)):
    """sizes: v1 (32,): 64 samples a step at 32 px, 2048 scenes; v2 (64, 32): 32 samples of each size a step, a
    quarter of the timesteps in [800, 1000) (train.sample_t), 1024 scenes per size, and the LoRA trained as
    applied at weight 0.8 (so `<lora:demo_monochrome:0.8>` gives the full style; 1.0 overshoots slightly)."""
    torch.set_num_threads(int(os.environ.get("NB_TRAIN_THREADS", "1")))
    torch.manual_seed(4321)
    rng = np.random.default_rng(4321)
    clip, unet, vae = load(folder)
    for p in list(clip.parameters()) + list(unet.parameters()) + list(vae.parameters()):
        p.requires_grad_(False)
    tok = Tokenizer(domain.WORDS)
    t0 = time.time()
    v2 = len(sizes) > 1
    sets = [dataset(vae, 1024 if v2 else 2048, 4321 + 100 * k, size) for k, size in enumerate(sizes)]
    batch, hi_t = (32, 0.25) if v2 else (64, 0.0)
    loras = inject(unet, 0.8 if v2 else 1.0)  # v2: trained as applied at weight 0.8 (the documented demo weight)
    params = [p for l in loras.values() for p in (l.down, l.up)]
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.05)
    ac = train.alphas_cumprod()
    empty = tok.ids77("")
    for step in range(steps):
        opt.zero_grad()
        for scenes, lats in sets:
            idx = rng.integers(len(scenes), size=batch)
            ids = torch.tensor([empty if rng.random() < 0.1 else tok.ids77(domain.caption(scenes[i], rng))
                                for i in idx])
            with torch.no_grad():
                ctx = clip(ids)
            x0 = lats[idx]
            t = train.sample_t(rng, batch, hi_t)
            noise = torch.randn_like(x0)
            a = ac[t][:, None, None, None]
            loss = (unet(a.sqrt() * x0 + (1 - a).sqrt() * noise, t, ctx) - noise).square().mean()
            (loss / len(sets)).backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"lora {step} loss {loss.item():.4f} {time.time() - t0:.0f} s", flush=True)
    export(os.path.join(folder, "lora", "demo_monochrome.safetensors"), loras)
    print(f"lora done in {time.time() - t0:.0f} s: {len(loras)} modules", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 600,
         tuple(int(v) for v in sys.argv[3].split(",")) if len(sys.argv) > 3 else (32,))
