"""Caption adherence of a demo checkpoint, measured in PyTorch (to steer training; the C++ test is the judge).

    /usr/bin/python3 tools/demo_model/evaluate.py models/demo [--sizes 64 32] [--cfg 7 1] [--steps 20]
        [--samplers euler_a lms ddim] [--novel 48] [--lora] [--png DIR] [--verbose]

(1) VAE round trip on random domain scenes at each size: does decode(encode(x)) keep the named colours and shapes?
(2) text -> image over the captions of tests/e2e/demo_test.cpp x 2 seeds, and over `--novel` random captions
(random scenes of domain.py with a seed the training never used, one and two shapes), with
  * euler_a: k-diffusion's sample_euler_ancestral (eta 1), 20 steps, on the "discrete" sigma schedule of the
    SD scaled-linear betas (CompVisDenoiser.get_sigmas: t = linspace(999, 0, n), sigma by log-sigma
    interpolation, then 0): the engine's CLI default (Euler a, 20 steps, CFG 7, A1111 schedule);
  * lms: k-diffusion's sample_lms (order 4) on the same schedule (issue 15: noise with the v1 model);
  * ddim: DDIM eta 0 on t = linspace(999, 0, n) (v1's measurement used it with 15 steps).
lms and ddim run at CFG 7 on the suite only; euler_a at every --cfg, on the suite and the novel captions.
Pixel analysis (the same as tests/e2e/demo_test.cpp, plus the shape test of issue 15):
  * background = per-channel median of the 2-pixel border frame, named by the nearest COLOURS entry;
  * shape colour = mean of the pixels >= 90 (RGB distance) from the background, named likewise (none if < 6 px);
    side: centroid x of those pixels < 0.45 (left) / > 0.55 (right) when the caption states left / right;
  * shape: see shape_of(). Two-shape captions: each half of the image (columns < W/2 and >= W/2) is analysed
    alone (colour and shape), with the background of the whole image.
(3) --lora: the demo LoRA merged at 0.5 and 0.8: mean chroma (max - min channel) and mean luma (Rec. 601) against
the base model's images of the same seeds.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import domain  # noqa: E402
from parity import load, read_safetensors  # noqa: E402
from tokenizer import Tokenizer  # noqa: E402
from train import SCALE, alphas_cumprod  # noqa: E402

NAMES = list(domain.COLOURS)
RGB = np.array([domain.COLOURS[n] for n in NAMES], np.float32)
FAR = 90.0          # RGB distance from the background that makes a pixel a shape pixel (colour test)
MIN_PIXELS = 6      # fewer shape pixels than this: no shape
FAR_SHAPE = 40.0    # the shape test's candidate pixels (see shape_of)
TRIANGLE_TOP, SQUARE_FILL = 0.40, 0.88  # thresholds of shape_of

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
LORA_PROMPTS = [c[0] for c in CASES[:8]]


def nearest(c):
    return NAMES[int(np.argmin(((RGB - c) ** 2).sum(1)))]


def background(img):
    h, w, _ = img.shape
    frame = np.ones((h, w), bool)
    frame[2:-2, 2:-2] = False
    return np.median(img[frame], axis=0)


def analyse(img):
    """img: HxWx3 float in [0,255] -> (background, shape colour or '', centroid x in [0,1]) (the C++ test's)."""
    h, w, _ = img.shape
    bg = background(img)
    far = np.sqrt(((img - bg) ** 2).sum(2)) >= FAR
    if far.sum() < MIN_PIXELS:
        return nearest(bg), "", 0.5
    xs = np.nonzero(far)[1] + 0.5
    return nearest(bg), nearest(img[far].mean(0)), float(xs.mean() / w)


def largest_component(mask):
    """Largest 4-connected component of a bool mask (flood fill)."""
    h, w = mask.shape
    label = np.zeros((h, w), np.int32)
    best, best_n, n = 0, 0, 0
    for y0, x0 in zip(*np.nonzero(mask)):
        if label[y0, x0]:
            continue
        n += 1
        label[y0, x0] = n
        stack, count = [(y0, x0)], 0
        while stack:
            y, x = stack.pop()
            count += 1
            for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and not label[yy, xx]:
                    label[yy, xx] = n
                    stack.append((yy, xx))
        if count > best_n:
            best, best_n = n, count
    return label == best


def shape_of(img, bg=None):
    """Shape test (issue 15): img HxWx3 float in [0,255] (a whole image or one half of it); bg: the background
    RGB (default: the border median of img). Returns (colour name or '', shape name or '', fill, top).
      1. candidate pixels: RGB distance >= FAR_SHAPE (40, half the closest palette pair, orange-yellow 81) from
         bg; fewer than MIN_PIXELS: no shape. c = their mean colour;
      2. shape mask = pixels nearer to c than to bg (the half-way contour, robust to soft edges), reduced to its
         largest 4-connected component; its bounding box: rows y0..y1, columns x0..x1 (inclusive);
      3. fill = mask pixels / bounding-box area; top = share of the mask pixels in the upper half of the box
         (rows y < y0 + (y1 - y0 + 1) / 2);
      4. triangle (apex up) if top < 0.40 (ideal 0.25; circle and square 0.5), else square if fill > 0.88
         (ideal 1), else circle (ideal pi/4 = 0.785)."""
    bg = background(img) if bg is None else bg
    d_bg = np.sqrt(((img - bg) ** 2).sum(2))
    far = d_bg >= FAR_SHAPE
    if far.sum() < MIN_PIXELS:
        return "", "", 0.0, 0.0
    c = img[far].mean(0)
    mask = largest_component(np.sqrt(((img - c) ** 2).sum(2)) < d_bg)
    ys, xs = np.nonzero(mask)
    h = ys.max() - ys.min() + 1
    fill = mask.sum() / float(h * (xs.max() - xs.min() + 1))
    top = (ys < ys.min() + h / 2).sum() / float(mask.sum())
    kind = "triangle" if top < TRIANGLE_TOP else "square" if fill > SQUARE_FILL else "circle"
    return nearest(c), kind, float(fill), float(top)


def to_pixels(x):
    """[B,3,H,W] in [-1,1] -> [B,H,W,3] in [0,255] rounded as the engine writes PNGs."""
    return np.round(((x.clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).numpy())


# ------------------------------------------------------------------------------------------ expectations
def expect_case(case):
    """A demo_test.cpp case -> {"bg", "objs": [{"colour", "shape", "side"}], "two": False}."""
    prompt, colour, bg, side = case
    shape = next(s for s in domain.SHAPES if s in prompt.split())
    return {"bg": bg, "objs": [{"colour": colour, "shape": shape, "side": side}], "two": False}


def novel_captions(n, seed=2026):
    """n random scenes (a seed the training never drew) -> (captions, expectations). Attributes left out of a
    caption are not checked (shape names are always in it)."""
    rng = np.random.default_rng(seed)
    caps, exps = [], []
    for _ in range(n):
        s = domain.sample_scene(rng)
        cap = domain.caption(s, rng)
        two = len(s["objs"]) == 2
        objs = [{"colour": o["colour"], "shape": o["shape"],
                 "side": o["pos"] if (o["pos"] in ("left", "right") and f"the {o['pos']}" in cap) else ""}
                for o in s["objs"]]
        caps.append(cap)
        exps.append({"bg": s["bg"], "objs": objs, "two": two})
    return caps, exps


def check(img, exp):
    """-> (colour checks passed, colour checks, shape checks passed, shape checks)."""
    h, w, _ = img.shape
    bg = background(img)
    cp = cn = sp = sn = 0
    cp += nearest(bg) == exp["bg"]
    cn += 1
    if exp["two"]:
        for o, part in zip(exp["objs"], (img[:, : w // 2], img[:, w // 2:])):
            col, kind, _, _ = shape_of(part, bg)
            cp += col == o["colour"]
            sp += kind == o["shape"]
            cn += 1
            sn += 1
    else:
        o = exp["objs"][0]
        _, col, cx = analyse(img)
        if col == "":  # orange on yellow (and back) differ by 81 < FAR: take the shape test's colour
            col = shape_of(img, bg)[0]
        cp += col == o["colour"]
        cn += 1
        if o["side"]:
            cp += col != "" and (cx < 0.45 if o["side"] == "left" else cx > 0.55)
            cn += 1
        sp += shape_of(img, bg)[1] == o["shape"]
        sn += 1
    return cp, cn, sp, sn


# ---------------------------------------------------------------------------------------------- samplers
class Denoiser:
    """k-diffusion CompVisDenoiser around the eps UNet with classifier-free guidance."""

    def __init__(self, unet, cond, unc, cfg):
        ac = alphas_cumprod().double()
        self.sigmas = ((1 - ac) / ac).sqrt()
        self.log_sigmas = self.sigmas.log()
        self.unet, self.cond, self.unc, self.cfg = unet, cond, unc, cfg

    def sigma_to_t(self, sigma):
        ls = torch.log(torch.tensor(float(sigma), dtype=torch.float64))
        dists = ls - self.log_sigmas
        low = int((dists >= 0).nonzero().max().clamp(max=len(self.sigmas) - 2)) if (dists >= 0).any() else 0
        lo, hi = self.log_sigmas[low], self.log_sigmas[low + 1]
        wgt = ((lo - ls) / (lo - hi)).clamp(0, 1)
        return float((1 - wgt) * low + wgt * (low + 1))

    def get_sigmas(self, n):
        ts = np.linspace(999, 0, n)
        s = [float(torch.exp(torch.tensor(np.interp(t, np.arange(1000), self.log_sigmas.numpy())))) for t in ts]
        return s + [0.0]

    def eps(self, x_in, t):
        """Guided eps of the UNet on its own input x_in = x / sqrt(sigma^2 + 1) at (fractional) timestep t."""
        n = x_in.shape[0]
        tt = torch.full((2 * n,), float(t))
        if self.cfg == 1.0:
            return self.unet(x_in, tt[:n], self.cond)
        e_u, e_c = self.unet(torch.cat([x_in, x_in]), tt, torch.cat([self.unc, self.cond])).chunk(2)
        return e_u + self.cfg * (e_c - e_u)

    def __call__(self, x, sigma):
        return x - self.eps(x / (sigma ** 2 + 1) ** 0.5, self.sigma_to_t(sigma)) * sigma


def euler_a(model, x, sigmas, g):
    for i in range(len(sigmas) - 1):
        s, sn = sigmas[i], sigmas[i + 1]
        den = model(x, s)
        up = min(sn, (sn ** 2 * (s ** 2 - sn ** 2) / s ** 2) ** 0.5)
        down = (sn ** 2 - up ** 2) ** 0.5
        x = x + (x - den) / s * (down - s)
        if sn > 0:
            x = x + torch.randn(x.shape, generator=g) * up
    return x


def lms_coefficient(order, t, i, j):
    """k-diffusion linear_multistep_coeff: integral of the Lagrange basis j over [t[i], t[i+1]]."""
    def fn(tau):
        prod = 1.0
        for k in range(order):
            if j != k:
                prod *= (tau - t[i - k]) / (t[i - j] - t[i - k])
        return prod
    # Gauss-Legendre (exact for these polynomials of degree <= 3)
    nodes, weights = np.polynomial.legendre.leggauss(8)
    a, b = t[i], t[i + 1]
    return float(sum(wt * fn(0.5 * (b - a) * nd + 0.5 * (b + a)) for nd, wt in zip(nodes, weights)) * 0.5 * (b - a))


def lms(model, x, sigmas, g, order=4):
    ds = []
    for i in range(len(sigmas) - 1):
        den = model(x, sigmas[i])
        ds.append((x - den) / sigmas[i])
        if len(ds) > order:
            ds.pop(0)
        cur = min(i + 1, order)
        coeffs = [lms_coefficient(cur, sigmas, i, j) for j in range(cur)]
        x = x + sum(c * d for c, d in zip(coeffs, reversed(ds)))
    return x


def ddim(model, x, steps):
    ac = alphas_cumprod()
    ts = np.linspace(999, 0, steps).round().astype(np.int64)
    for i, t in enumerate(ts):
        a = ac[t]
        eps = model.eps(x, t)
        a_prev = ac[ts[i + 1]] if i + 1 < steps else torch.tensor(1.0)
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return x


@torch.no_grad()
def sample(clip, unet, vae, tok, prompts, seed, cfg, steps, size, sampler="euler_a"):
    g = torch.Generator().manual_seed(seed)
    n = len(prompts)
    noise = torch.randn(n, 4, size // 8, size // 8, generator=g)
    cond = clip(torch.tensor([tok.ids77(p) for p in prompts]))
    unc = clip(torch.tensor([tok.ids77("")] * n))
    model = Denoiser(unet, cond, unc, cfg)
    sigmas = model.get_sigmas(steps)
    if sampler == "euler_a":
        x = euler_a(model, noise * sigmas[0], sigmas, g)
    elif sampler == "lms":
        x = lms(model, noise * sigmas[0], sigmas, g)
    else:
        x = ddim(model, noise, steps)
    return to_pixels(vae.decode(x / SCALE))


def save_grid(path, imgs, cols=11):
    """Tiles uint8 images (HxWx3) into one PNG, `cols` a row, 2-pixel grey gaps."""
    h, w, _ = imgs[0].shape
    rows = (len(imgs) + cols - 1) // cols
    grid = np.full((rows * (h + 2), cols * (w + 2), 3), 128, np.uint8)
    for k, im in enumerate(imgs):
        r, c = divmod(k, cols)
        grid[r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = im
    write_png(path, grid)


def write_png(path, img):
    import struct
    import zlib
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].astype(np.uint8).tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def adherence(clip, unet, vae, tok, cfg, steps, size, sampler, prompts, exps, seeds, label, png=None, verbose=False):
    cp = cn = sp = sn = full = 0
    imgs_all = []
    for seed in seeds:
        imgs = sample(clip, unet, vae, tok, prompts, seed, cfg, steps, size, sampler)
        imgs_all += list(imgs)
        for p, e, img in zip(prompts, exps, imgs):
            a, b, c, d = check(img, e)
            cp, cn, sp, sn = cp + a, cn + b, sp + c, sn + d
            full += a == b and c == d
            if verbose and not (a == b and c == d):
                col = shape_of(img)
                print(f"  miss seed {seed} '{p}': {analyse(img)[:2]} shape {col[1]} fill {col[2]:.2f} top {col[3]:.2f}")
    n = len(seeds) * len(prompts)
    print(f"{label:8s} {sampler:7s} {size:3d} px cfg {cfg:g}: colours {100 * cp / cn:5.1f} % ({cp}/{cn}), "
          f"shapes {100 * sp / sn:5.1f} % ({sp}/{sn}), images fully right {100 * full / n:5.1f} % ({full}/{n})",
          flush=True)
    if png:
        save_grid(os.path.join(png, f"{label}_{sampler}_{size}_cfg{cfg:g}.png"), [i.astype(np.uint8) for i in imgs_all])
    return cp / cn, sp / sn, full / n


@torch.no_grad()
def vae_roundtrip(vae, n=128, seed=99, sizes=(32, 64)):
    for size in sizes:
        rng = np.random.default_rng(seed)
        scenes = [domain.sample_scene(rng) for _ in range(n)]
        x = np.stack([domain.render(s, rng, size) for s in scenes]).astype(np.float32)
        rec = to_pixels(vae.decode(vae.moments(torch.from_numpy(x / 127.5 - 1.0).permute(0, 3, 1, 2))[0]))
        res = {}
        for tag, imgs in (("truth", x), ("vae", rec)):
            cp = cn = sp = sn = 0
            for s, img in zip(scenes, imgs):
                e = {"bg": s["bg"], "two": len(s["objs"]) == 2,
                     "objs": [{"colour": o["colour"], "shape": o["shape"], "side": ""} for o in s["objs"]]}
                a, b, c, d = check(img, e)
                cp, cn, sp, sn = cp + a, cn + b, sp + c, sn + d
            res[tag] = f"colours {cp}/{cn}, shapes {sp}/{sn}"
        print(f"{size} px: ground truth {res['truth']}; VAE round trip {res['vae']}", flush=True)


def merge_lora(unet, path, weight):
    """A copy of unet with the kohya LoRA at `path` merged at `weight` (W += weight * alpha / rank * up @ down)."""
    import copy
    out = copy.deepcopy(unet)
    state, _ = read_safetensors(path)
    mods = dict(out.named_modules())
    for k in state:
        if not k.endswith(".lora_down.weight"):
            continue
        base = k[: -len(".lora_down.weight")]
        down, up = state[k].float(), state[base + ".lora_up.weight"].float()
        alpha = float(state[base + ".alpha"])
        name = base[len("lora_unet_"):]
        mod = next(m for n, m in mods.items() if n.replace(".", "_") == name)
        delta = (up.flatten(1) @ down.flatten(1)) * (alpha / down.shape[0]) * weight
        mod.weight.data += delta.reshape(mod.weight.shape)
    return out


def chroma_luma(imgs):
    chroma = (imgs.max(3) - imgs.min(3)).mean((1, 2))
    luma = (imgs * np.array([0.299, 0.587, 0.114])).sum(3)
    return chroma, luma


def lora_check(clip, unet, vae, tok, folder, size, seeds=(1, 2)):
    path = os.path.join(folder, "lora", "demo_monochrome.safetensors")
    base = np.concatenate([sample(clip, unet, vae, tok, LORA_PROMPTS, s, 7.0, 20, size) for s in seeds])
    bc, bl = chroma_luma(base)
    print(f"LoRA {size} px, {len(base)} images (euler_a 20, cfg 7): base mean chroma {bc.mean():.1f}, "
          f"mean luma {bl.mean((1, 2)).mean():.1f}", flush=True)
    for w in (0.5, 0.8):
        u = merge_lora(unet, path, w)
        imgs = np.concatenate([sample(clip, u, vae, tok, LORA_PROMPTS, s, 7.0, 20, size) for s in seeds])
        c, lum = chroma_luma(imgs)
        rel = np.abs(lum.mean((1, 2)) / bl.mean((1, 2)) - 1)
        # background vs shape: luma contrast between the base image's shape region and its background
        contrast = []
        for b, im, lm in zip(base, imgs, lum):
            far = np.sqrt(((b - background(b)) ** 2).sum(2)) >= FAR
            contrast.append(abs(lm[far].mean() - lm[~far].mean()) if far.sum() >= MIN_PIXELS else 0.0)
        print(f"  weight {w}: mean chroma {c.mean():.1f} ({100 * c.mean() / bc.mean():.1f} % of base), "
              f"max image chroma {c.max():.1f}; per-image luma change mean {100 * rel.mean():.1f} %, "
              f"max {100 * rel.max():.1f} %; shape/background luma contrast mean {np.mean(contrast):.1f}, "
              f"min {np.min(contrast):.1f}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--sizes", type=int, nargs="*", default=[64, 32])
    ap.add_argument("--cfg", type=float, nargs="*", default=[7.0, 1.0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--samplers", nargs="*", default=["euler_a", "lms", "ddim"])
    ap.add_argument("--novel", type=int, default=48, help="random captions (0: only the test suite's)")
    ap.add_argument("--lora", action="store_true", help="measure the demo LoRA at 0.5 and 0.8")
    ap.add_argument("--no-vae", action="store_true")
    ap.add_argument("--png", help="write image grids there")
    ap.add_argument("--verbose", action="store_true", help="list the images that miss their caption")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("NB_TRAIN_THREADS", "1")))
    t0 = time.time()
    if args.png:
        os.makedirs(args.png, exist_ok=True)
    clip, unet, vae = load(args.folder)
    if not args.no_vae:
        vae_roundtrip(vae)
    tok = Tokenizer(domain.WORDS)
    suite = ([c[0] for c in CASES], [expect_case(c) for c in CASES], (1, 2), "suite")
    novel = novel_captions(args.novel) + ((3,), "novel")
    for size in args.sizes:
        for sampler in args.samplers:
            for cfg in args.cfg:
                if sampler != "euler_a" and cfg != 7.0:
                    continue  # the other samplers at CFG 7 only
                for prompts, exps, seeds, label in (suite, novel) if args.novel else (suite,):
                    if label == "novel" and sampler != "euler_a":
                        continue
                    adherence(clip, unet, vae, tok, cfg, args.steps, size, sampler, prompts, exps, seeds, label,
                              args.png, args.verbose)
    if args.lora:
        lora_check(clip, unet, vae, tok, args.folder, 64)
    print(f"evaluation took {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
