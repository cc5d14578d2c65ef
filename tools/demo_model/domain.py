"""Procedural caption/image domain of the demo model: one or two flat shapes over a coloured background.

Everything is a pure function of a seed (numpy Generator), so the dataset needs no external data.
Images are SIZE x SIZE RGB uint8 (SIZE = 64 since v2; render(..., size=32) draws the same scene at 32 px); positions and sizes are fractions of SIZE.
"""
import numpy as np

SIZE = 64  # the demo model's default size since v2 (trained at 64 and 32)
COLOURS = {  # name -> sRGB; the C++ e2e test uses the same table to name the colour of a region
    "red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 60, 220), "yellow": (240, 220, 30),
    "orange": (245, 140, 20), "purple": (140, 50, 180), "white": (245, 245, 245), "black": (15, 15, 15),
}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 0.19, "large": 0.31}  # half extent: a small shape still spans >= 1.5 latent pixels (f = 8)
POSITIONS = {"left": (0.25, 0.5), "right": (0.75, 0.5), "center": (0.5, 0.5), "top": (0.5, 0.25), "bottom": (0.5, 0.75)}
WORDS = sorted(set(list(COLOURS) + list(SHAPES) + list(SIZES) + list(POSITIONS) +
                   "a an the on in at of and with background picture image shape big centre middle".split()))


def shape_mask(kind, cx, cy, r, size=SIZE):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    if kind == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    if kind == "square":
        s = r * 0.85
        return (np.abs(xx - cx) <= s) & (np.abs(yy - cy) <= s)
    # upward triangle: apex at (cx, cy - r), base at y = cy + r * 0.8
    top, base = cy - r, cy + r * 0.8
    t = (yy - top) / (base - top)
    return (t >= 0) & (t <= 1) & (np.abs(xx - cx) <= t * r)


def sample_scene(rng):
    """A scene: background colour + 1-2 objects {colour, shape, size, pos}."""
    names = list(COLOURS)
    bg = names[rng.integers(len(names))]
    n = 1 if rng.random() < 0.7 else 2
    objs = []
    poss = ["left", "right"] if n == 2 else [list(POSITIONS)[rng.integers(len(POSITIONS))]]
    if n == 2 and rng.random() < 0.5:
        poss = poss[::-1]
    for pos in poss:
        colour = bg
        while colour == bg:
            colour = names[rng.integers(len(names))]
        size = "small" if (n == 2 or rng.random() < 0.5) else "large"
        objs.append({"colour": colour, "shape": SHAPES[rng.integers(3)], "size": size, "pos": pos})
    return {"bg": bg, "objs": sorted(objs, key=lambda o: POSITIONS[o["pos"]][0])}


def render(scene, rng, size=SIZE):
    """size x size RGB; the same rng draws at every size, so a scene renders alike at 32 and 64 px."""
    img = np.empty((size, size, 3), np.uint8)
    img[:] = COLOURS[scene["bg"]]
    for o in scene["objs"]:
        cx, cy = (v * size + rng.uniform(-0.05, 0.05) * size for v in POSITIONS[o["pos"]])
        r = SIZES[o["size"]] * size * rng.uniform(0.9, 1.1)
        img[shape_mask(o["shape"], cx, cy, r, size)] = COLOURS[o["colour"]]
    return img


def describe(o, rng, with_pos):
    words = ["a"]
    if rng.random() < 0.6:
        words.append(o["size"])
    words += [o["colour"], o["shape"]]
    if with_pos:
        words += ["at the", o["pos"]] if o["pos"] in ("top", "bottom", "center") else ["on the", o["pos"]]
    return " ".join(words)


def caption(scene, rng):
    """One of several plain phrasings; attributes may be omitted (then any value fits the caption)."""
    objs, bg = scene["objs"], scene["bg"]
    with_pos = len(objs) == 2 or rng.random() < 0.7
    parts = [describe(o, rng, with_pos) for o in objs]
    subject = " and ".join(parts)
    style = rng.integers(4)
    if style == 0:
        return f"{subject} on a {bg} background"
    if style == 1:
        return f"{subject}, {bg} background"
    if style == 2:
        return f"{bg} background with {subject}"
    return f"{subject} on {bg}"
