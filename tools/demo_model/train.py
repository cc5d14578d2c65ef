"""Train the nanobanana demo model from scratch and export it as an SD 1.x single-file checkpoint.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tools/demo_model/train.py --out models/demo

Stages: (1) AutoencoderKL on rendered scenes (MSE + small KL); its latent scale is folded into
quant_conv/post_quant_conv so that 0.18215 * z has unit std, as the engine's fixed SD scale expects;
(2) CLIP text encoder + UNet jointly, eps-prediction on the SD scaled-linear schedule, 10% empty captions
(so classifier-free guidance works). Everything is seeded; one thread (torch.set_num_threads(1)).
v2 (issue 15): `--resume --sizes 64,32 --hi-t 0.25` fine-tunes at 64 and 32 px with more high-noise timesteps
(see README.md and retrain.sh).
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import domain  # noqa: E402
from modules import AutoencoderKL, CLIPText, UNet  # noqa: E402
from tokenizer import Tokenizer  # noqa: E402

VAE_CFG = {"double_z": True, "z_channels": 4, "resolution": 32, "in_channels": 3, "out_ch": 3, "ch": 64,
           "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
UNET_CFG = {"image_size": 4, "in_channels": 4, "out_channels": 4, "model_channels": 64,
            "attention_resolutions": [1, 2], "num_res_blocks": 1, "channel_mult": [1, 2], "num_heads": 2,
            "use_spatial_transformer": True, "transformer_depth": 1, "context_dim": 64,
            "use_checkpoint": False, "legacy": False}
SCALE = 0.18215


def clip_cfg(vocab_size, bos, eos):
    return {"vocab_size": vocab_size, "max_position_embeddings": 77, "hidden_size": 64, "num_attention_heads": 2,
            "num_hidden_layers": 2, "intermediate_size": 256, "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-05, "bos_token_id": bos, "eos_token_id": eos}


def images(rng, n, size=32):
    """n scenes -> (scenes, float tensor [n,3,size,size] in [-1,1]) (v1 stages: 32 px)."""
    scenes = [domain.sample_scene(rng) for _ in range(n)]
    x = np.stack([domain.render(s, rng, size) for s in scenes]).astype(np.float32) / 127.5 - 1.0
    return scenes, torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def train_vae(steps, batch, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    vae = AutoencoderKL(VAE_CFG)
    with torch.no_grad():
        # Start with a near-deterministic posterior (unit noise would drown the early latents) and with
        # residual branches at zero (each block starts as identity), which makes the tiny VAE train much faster.
        vae.quant_conv.bias[VAE_CFG["z_channels"]:] = -8.0
        for name, p in vae.named_parameters():
            if name.endswith(("conv2.weight", "conv2.bias", "proj_out.weight", "proj_out.bias")):
                p.zero_()
    opt = torch.optim.AdamW(vae.parameters(), lr=2e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.05)
    for step in range(steps):
        _, x = images(rng, batch)
        mean, logvar = vae.moments(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        rec = vae.decode(z)
        kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).mean()
        # Shapes cover a small part of each image, so plain MSE lets their colours drift towards the
        # background's; pixels that differ from the border colour (the background) weigh 4x.
        bg = x[:, :, :1, :1]
        weight = 1.0 + 3.0 * ((x - bg).abs().sum(1, keepdim=True) > 0.05).float()
        loss = (weight * (rec - x).square()).mean() + 1e-4 * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 25 == 0 or step == steps - 1:
            print(f"vae {step} mse {(rec - x).square().mean().item():.5f} kl {kl.item():.3f}", flush=True)
        if (step + 1) % 500 == 0:
            import evaluate  # noqa: E402 (imports train)
            vae.eval()
            evaluate.vae_roundtrip(vae)
            vae.train()
    return vae


@torch.no_grad()
def fold_latent_scale(vae, seed):
    """Rescale z by k (exactly, inside the 1x1 convs) so that SCALE * z has unit std."""
    _, x = images(np.random.default_rng(seed + 7), 64)
    mean, _ = vae.moments(x)
    k = 1.0 / (SCALE * mean.std().item())
    z = VAE_CFG["z_channels"]
    vae.quant_conv.weight[:z] *= k
    vae.quant_conv.bias[:z] *= k
    vae.quant_conv.bias[z:] += 2.0 * math.log(k)
    vae.post_quant_conv.weight /= k
    print(f"latent scale folded: k = {k:.4f}", flush=True)


@torch.no_grad()
def encode_dataset(vae, n, seed, size=32, edges=False):
    """-> (scenes, latents); with edges=True also each latent cell's share of shape pixels (those differing from
    the border colour), [n,1,h,w] (for --edge-weight)."""
    rng = np.random.default_rng(seed)
    scenes, lats, fracs = [], [], []
    for i in range(0, n, 64):
        s, x = images(rng, min(64, n - i), size)
        scenes += s
        lats.append(vae.moments(x)[0] * SCALE)
        if edges:
            shape = ((x - x[:, :, :1, :1]).abs().sum(1, keepdim=True) > 0.05).float()
            fracs.append(torch.nn.functional.avg_pool2d(shape, 8))
    return (scenes, torch.cat(lats), torch.cat(fracs)) if edges else (scenes, torch.cat(lats))


def alphas_cumprod():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, 0).float()


def sample_t(rng, n, hi_t):
    """Uniform timesteps; with hi_t > 0 (v2) a fraction hi_t of them uniform in [800, 1000) instead, so the
    high-noise end (where LMS extrapolates over the big first steps of the discrete schedule) is trained more."""
    t = rng.integers(0, 1000, size=n)
    if hi_t > 0:
        t = np.where(rng.random(n) < hi_t, rng.integers(800, 1000, size=n), t)
    return torch.from_numpy(t)


def train_unet(tok, scenes, lats, steps, batch, seed, snapshot=None, every=0, start=None, lr=1e-3, hi_t=0.0,
               drop=0.1, fracs=None, edge_weight=0.0, ema=0.0):
    """start: (clip, unet) to continue from (--resume), else fresh modules. scenes/lats: one dataset, or lists of
    datasets (one per image size, v2): then every step takes `batch` samples of each and sums their losses.
    v3: drop = share of empty captions; edge_weight > 0 weighs the loss of latent cells that are partly shape
    (a shape's outline: where circles and squares differ) 1 + edge_weight x; ema > 0 returns (and snapshots) an
    exponential moving average of the weights with that decay."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    clip, unet = start if start else (CLIPText(clip_cfg(len(tok.vocab), tok.bos, tok.eos)), UNet(UNET_CFG))
    clip.train()
    unet.train()
    params = list(clip.parameters()) + list(unet.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    ac = alphas_cumprod()
    empty = tok.ids77("")
    multi = isinstance(scenes, list) and isinstance(scenes[0], list)
    sets = list(zip(scenes, lats)) if multi else [(scenes, lats)]
    frs = fracs if fracs else [None] * len(sets)  # one share-of-shape tensor per dataset (--edge-weight)
    avg = None
    if ema > 0:
        import copy
        avg = (copy.deepcopy(clip).eval(), copy.deepcopy(unet).eval())
        avg_params = list(avg[0].parameters()) + list(avg[1].parameters())
    for step in range(steps):
        opt.zero_grad()
        for (scs, lts), fr in zip(sets, frs):
            idx = rng.integers(len(scs), size=batch)
            ids = torch.tensor([empty if rng.random() < drop else tok.ids77(domain.caption(scs[i], rng))
                                for i in idx])
            x0 = lts[idx]
            t = sample_t(rng, batch, hi_t)
            noise = torch.randn_like(x0)
            a = ac[t][:, None, None, None]
            xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
            err = (unet(xt, t, clip(ids)) - noise).square()
            if edge_weight > 0 and fr is not None:
                f = fr[idx]
                err = err * (1.0 + edge_weight * ((f > 0) & (f < 1)).float())
            loss = err.mean()
            (loss / len(sets)).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if avg is not None:
            with torch.no_grad():
                for a, p in zip(avg_params, params):
                    a.lerp_(p, 1.0 - ema)
        if step % 50 == 0 or step == steps - 1:
            print(f"unet {step} loss {loss.item():.4f}", flush=True)
        if snapshot and every and (step + 1) % every == 0 and step + 1 < steps:
            snapshot(*(avg if avg else (clip, unet)))  # a usable checkpoint even if the run is stopped early
    return avg if avg else (clip, unet)


def write_safetensors(path, tensors, metadata):
    """tensors: name -> torch tensor (F16 / I64 written as given)."""
    header, blobs, off = {"__metadata__": metadata}, [], 0
    codes = {torch.float16: "F16", torch.float32: "F32", torch.int64: "I64"}
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        b = t.numpy().tobytes()
        header[name] = {"dtype": codes[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def export(path, tok, vae, clip, unet):
    t = {}
    for prefix, mod in (("first_stage_model.", vae), ("model.diffusion_model.", unet),
                        ("cond_stage_model.transformer.text_model.", clip)):
        for k, v in mod.state_dict().items():
            t[prefix + k] = v.detach().to(torch.float16)
    t["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    meta = {"format": "SD1.x single-file checkpoint (LDM naming), fp16; nanobanana demo model",
            "unet_config": json.dumps(UNET_CFG), "vae_ddconfig": json.dumps(VAE_CFG), "vae_embed_dim": "4",
            "scale_factor": str(SCALE), "clip_config": json.dumps(clip_cfg(len(tok.vocab), tok.bos, tok.eos)),
            "schedule": json.dumps({"beta_schedule": "scaled_linear", "linear_start": 0.00085,
                                    "linear_end": 0.012, "timesteps": 1000, "parameterization": "eps"})}
    write_safetensors(path, t, meta)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models/demo")
    ap.add_argument("--vae-steps", type=int, default=2500)
    ap.add_argument("--vae-batch", type=int, default=16)
    ap.add_argument("--scenes", type=int, default=4096)
    ap.add_argument("--unet-steps", type=int, default=1500)
    ap.add_argument("--unet-batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--snapshot-every", type=int, default=250, help="export every N UNet steps (0 = only at the end)")
    ap.add_argument("--resume", action="store_true",
                    help="continue the text encoder + UNet of <out>/demo.safetensors (VAE kept) for --unet-steps")
    ap.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of the UNet stage")
    ap.add_argument("--sizes", default="32",
                    help="comma-separated image sizes of the UNet stage; each step takes --unet-batch of each "
                         "(v2: 64,32, with --scenes scenes per size)")
    ap.add_argument("--hi-t", type=float, default=0.0, help="fraction of timesteps drawn from [800, 1000) (v2)")
    ap.add_argument("--drop", type=float, default=0.1, help="share of empty captions (classifier-free guidance)")
    ap.add_argument("--edge-weight", type=float, default=0.0,
                    help="extra loss weight of latent cells partly covered by a shape (v3)")
    ap.add_argument("--ema", type=float, default=0.0, help="export an EMA of the weights with this decay (v3)")
    ap.add_argument("--keep-snapshots", action="store_true",
                    help="also keep each snapshot as <out>/snapshots/<step>/demo.safetensors")
    ap.add_argument("--seed-offset", type=int, default=None, help="UNet stage seed = --seed + this "
                    "(default 2, or 5 with --resume)")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("NB_TRAIN_THREADS", "1")))
    t0 = time.time()
    os.makedirs(args.out, exist_ok=True)
    tok = Tokenizer(domain.WORDS)
    tok.save(args.out)
    start = None
    if args.resume:
        from parity import load  # noqa: E402 (parity imports this module)
        clip, unet, vae = load(args.out)
        start = (clip, unet)
    else:
        vae = train_vae(args.vae_steps, args.vae_batch, args.seed)
        fold_latent_scale(vae, args.seed)
    vae.eval()
    print(f"vae done {time.time() - t0:.0f} s", flush=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    scenes, lats, fracs = [], [], []
    for k, size in enumerate(sizes):  # v1 (one size, 32): the same data as before
        s, z, *fr = encode_dataset(vae, args.scenes, args.seed + 1 + 100 * k, size, args.edge_weight > 0)
        scenes.append(s)
        lats.append(z)
        fracs += fr
        print(f"encoded {len(s)} scenes at {size} px, latent std {z.std().item():.3f}, {time.time() - t0:.0f} s",
              flush=True)
    if len(sizes) == 1:
        scenes, lats = scenes[0], lats[0]
    path = os.path.join(args.out, "demo.safetensors")
    offset = args.seed_offset if args.seed_offset is not None else (5 if args.resume else 2)
    count = [0]

    def snapshot(c, u):
        count[0] += 1
        export(path, tok, vae, c, u)
        if args.keep_snapshots:
            d = os.path.join(args.out, "snapshots", str(count[0] * args.snapshot_every))
            os.makedirs(d, exist_ok=True)
            export(os.path.join(d, "demo.safetensors"), tok, vae, c, u)
    clip, unet = train_unet(tok, scenes, lats, args.unet_steps, args.unet_batch, args.seed + offset, snapshot,
                            args.snapshot_every, start, args.lr, args.hi_t, args.drop, fracs or None,
                            args.edge_weight, args.ema)
    export(path, tok, vae, clip.eval(), unet.eval())
    print(f"total training time {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
