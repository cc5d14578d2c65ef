"""Caption adherence of a demo checkpoint, measured in PyTorch (to steer training; the C++ test is the judge).

    /usr/bin/python3 tools/demo_model/evaluate.py models/demo [--cfg 7] [--steps 15]

(1) VAE round trip on random domain scenes: does decode(encode(x)) keep the named colours? (2) text -> image with
DDIM (eta 0) on the SD schedule over the captions of tests/e2e/demo_test.cpp x 2 seeds. Both use the same pixel
analysis as the C++ test (border median -> background, pixels > 90 away -> shape colour and centroid).
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import domain  # noqa: E402
from parity import load  # noqa: E402
from tokenizer import Tokenizer  # noqa: E402
from train import SCALE, alphas_cumprod  # noqa: E402

NAMES = list(domain.COLOURS)
RGB = np.array([domain.COLOURS[n] for n in NAMES], np.float32)

CASES = [  # prompt, shape colour, background, side  (the list of tests/e2e/demo_test.cpp)
    ("a red circle on a blue background", "red", "blue", ""),
    ("a small yellow square on the left, green background", "yellow", "green", "left"),
    ("a large green triangle on a white background", "green", "white", ""),
    ("a blue square on the right on a yellow background", "blue", "yellow", "right"),
    ("a white circle on the left, black background", "white", "black", "left"),
    ("a black square on a white background", "black", "white", ""),
    ("a purple triangle on the right, orange background", "purple", "orange", "right"),
    ("an orange circle on a purple background", "orange", "purple", ""),
    ("a large red square on a green background", "red", "green", ""),
    ("a small blue circle on the left on a white background", "blue", "white", "left"),
    ("a yellow triangle on a black background", "yellow", "black", ""),
    ("a green circle on the right, red background", "green", "red", "right"),
    ("a white square on a blue background", "white", "blue", ""),
    ("a large orange triangle on the left, blue background", "orange", "blue", "left"),
    ("a purple circle on a yellow background", "purple", "yellow", ""),
    ("a red triangle on the right on a white background", "red", "white", "right"),
    ("a black circle on an orange background", "black", "orange", ""),
    ("a small green square on the left, purple background", "green", "purple", "left"),
    ("a blue triangle on a green background", "blue", "green", ""),
    ("a yellow circle on the right, red background", "yellow", "red", "right"),
    ("a large white triangle on a purple background", "white", "purple", ""),
    ("an orange square on the right, black background", "orange", "black", "right"),
]


def nearest(c):
    return NAMES[int(np.argmin(((RGB - c) ** 2).sum(1)))]


def analyse(img):
    """img: HxWx3 float in [0,255] -> (background, shape colour or '', centroid x in [0,1])."""
    h, w, _ = img.shape
    frame = np.ones((h, w), bool)
    frame[2:-2, 2:-2] = False
    bg = np.median(img[frame], axis=0)
    far = np.sqrt(((img - bg) ** 2).sum(2)) >= 90.0
    if far.sum() < 6:
        return nearest(bg), "", 0.5
    xs = np.nonzero(far)[1] + 0.5
    return nearest(bg), nearest(img[far].mean(0)), float(xs.mean() / w)


def to_pixels(x):
    """[B,3,H,W] in [-1,1] -> [B,H,W,3] in [0,255] rounded as the engine writes PNGs."""
    return np.round(((x.clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).numpy())


@torch.no_grad()
def vae_roundtrip(vae, n=128, seed=99):
    rng = np.random.default_rng(seed)
    scenes = [domain.sample_scene(rng) for _ in range(n)]
    x = torch.from_numpy(np.stack([domain.render(s, rng) for s in scenes]).astype(np.float32) / 127.5 - 1.0)
    x = x.permute(0, 3, 1, 2)
    rec = to_pixels(vae.decode(vae.moments(x)[0]))
    ok_bg = ok_shape = 0
    wrong = {}
    for s, img in zip(scenes, rec):
        bg, shape, _ = analyse(img)
        ok_bg += bg == s["bg"]
        if bg != s["bg"]:
            wrong[(s["bg"], bg)] = wrong.get((s["bg"], bg), 0) + 1
        if len(s["objs"]) == 1:
            ok_shape += shape == s["objs"][0]["colour"]
    singles = sum(len(s["objs"]) == 1 for s in scenes)
    print(f"vae round trip: background {ok_bg}/{n}, single-shape colour {ok_shape}/{singles}; "
          f"wrong backgrounds {wrong}", flush=True)
    return ok_bg / n


@torch.no_grad()
def sample(clip, unet, vae, tok, prompts, seed, cfg, steps, size):
    ac = alphas_cumprod()
    ts = np.linspace(999, 0, steps).round().astype(np.int64)
    g = torch.Generator().manual_seed(seed)
    n = len(prompts)
    x = torch.randn(n, 4, size // 8, size // 8, generator=g)
    cond = clip(torch.tensor([tok.ids77(p) for p in prompts]))
    unc = clip(torch.tensor([tok.ids77("")] * n))
    for i, t in enumerate(ts):
        tt = torch.full((2 * n,), float(t))
        e_u, e_c = unet(torch.cat([x, x]), tt, torch.cat([unc, cond])).chunk(2)
        eps = e_u + cfg * (e_c - e_u)
        a = ac[t]
        a_prev = ac[ts[i + 1]] if i + 1 < steps else torch.tensor(1.0)
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return to_pixels(vae.decode(x / SCALE))


def adherence(clip, unet, vae, tok, cfg, steps, size=domain.SIZE, verbose=False):
    full = checks = passed = 0
    for seed in (1, 2):
        imgs = sample(clip, unet, vae, tok, [c[0] for c in CASES], seed, cfg, steps, size)
        for (prompt, shape, bg, side), img in zip(CASES, imgs):
            a_bg, a_shape, cx = analyse(img)
            ok = [a_bg == bg, a_shape == shape]
            if side:
                ok.append(a_shape != "" and (cx < 0.45 if side == "left" else cx > 0.55))
            full += all(ok)
            if verbose and not all(ok):
                print(f"  miss seed {seed} '{prompt}': bg {a_bg}, shape {a_shape or '-'} at x={cx:.2f}")
            checks += len(ok)
            passed += sum(ok)
    n = 2 * len(CASES)
    print(f"cfg {cfg}: {full}/{n} images fully match ({100 * full / n:.1f} %), checks {passed}/{checks} "
          f"({100 * passed / checks:.1f} %)", flush=True)
    return full / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--cfg", type=float, nargs="*", default=[7.0, 1.0])
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--verbose", action="store_true", help="list the images that miss their caption")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("NB_TRAIN_THREADS", "1")))
    clip, unet, vae = load(args.folder)
    vae_roundtrip(vae)
    tok = Tokenizer(domain.WORDS)
    for cfg in args.cfg:
        adherence(clip, unet, vae, tok, cfg, args.steps, verbose=args.verbose)


if __name__ == "__main__":
    main()
