#!/usr/bin/env python3
"""Writes the small seed corpora of fuzz/corpus/<target>/ (committed; rerun to regenerate).
Needs numpy, Pillow and torch (Debian: python3-numpy python3-pil python3-torch)."""
import io, json, os, struct, sys, zlib
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)


def out(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


rng = np.random.default_rng(22)
a = rng.standard_normal((2, 3)).astype(np.float32)
out("safetensors", "f32_f16_bf16.safetensors", safetensors({
    "a": ("F32", [2, 3], a.tobytes()),
    "b.weight": ("F16", [3], a[0].astype(np.float16).tobytes()),
    "c": ("BF16", [2], (a[1, :2].view(np.uint32) >> 16).astype(np.uint16).tobytes()),
}, {"format": "pt", "ss_network_dim": "8"}))
out("safetensors", "scalar_i64.safetensors", safetensors({
    "position_ids": ("I64", [1, 4], np.arange(4, dtype=np.int64).tobytes()),
    "logit_scale": ("F32", [], np.float32(4.6).tobytes()),
    "empty": ("F16", [0, 4], b""),
}))
out("safetensors", "lora_kohya.safetensors", safetensors({
    "lora_unet_input_blocks_1_1_proj_in.lora_down.weight": ("F16", [2, 4], rng.standard_normal(8).astype(np.float16).tobytes()),
    "lora_unet_input_blocks_1_1_proj_in.lora_up.weight": ("F16", [4, 2], rng.standard_normal(8).astype(np.float16).tobytes()),
    "lora_unet_input_blocks_1_1_proj_in.alpha": ("F16", [], np.float16(2).tobytes()),
}))

try:
    import torch
    buf = io.BytesIO()
    torch.save({"params_ema": {"conv.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3),
                               "conv.bias": torch.zeros(2, dtype=torch.float16)}}, buf)
    out("torch_zip", "params_ema.pth", buf.getvalue())
    buf = io.BytesIO()
    t = torch.arange(8, dtype=torch.float32)
    torch.save({"string_to_param": {"*": t.reshape(2, 4)}, "name": "tok", "step": 3,
                "view": t[2:6], "bf16": t.to(torch.bfloat16)}, buf)
    out("torch_zip", "embedding_views.pt", buf.getvalue())
except ImportError:
    print("torch missing: torch_zip seeds not written", file=sys.stderr)

from PIL import Image, PngImagePlugin
px = (rng.random((6, 5, 4)) * 255).astype(np.uint8)
for mode in ("RGB", "RGBA", "L", "LA", "P", "1", "I;16"):
    im = (Image.fromarray(px[..., 0].astype(np.uint16) * 257) if mode == "I;16"
          else Image.fromarray(px[..., :3]).convert(mode))
    info = PngImagePlugin.PngInfo()
    if mode == "RGB":
        info.add_text("parameters", "a cat\nNegative prompt: dog\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1")
    if mode == "RGBA":
        info.add_itxt("parameters", "caf\u00e9 \u732b\nSteps: 4, Seed: 2, Size: 5x6", zip=True)
    b = io.BytesIO()
    im.save(b, "PNG", pnginfo=info)
    out("png", f"{mode.replace(';', '_')}.png", b.getvalue())
b = io.BytesIO()
Image.fromarray(px[..., :3]).save(b, "PNG", optimize=True)
out("png", "optimized.png", b.getvalue())

for f in sorted(os.listdir(os.path.join(root, "tests", "data"))):
    if f.endswith(".jpg"):
        out("jpeg", f, open(os.path.join(root, "tests", "data", f), "rb").read())
for mode in ("L", "CMYK"):
    b = io.BytesIO()
    Image.fromarray(px[..., :3]).convert(mode).save(b, "JPEG", quality=50)
    out("jpeg", f"{mode}.jpg", b.getvalue())

infotexts = {
    "basic": "a photo of a cat\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, "
             "CFG scale: 7, Seed: 42, Size: 512x512, Model hash: 6ce0161689, Model: v1-5",
    "quoted": "(masterpiece:1.2), <lora:x:0.8>\nSteps: 8, Sampler: Euler a, CFG scale: 1.5, Seed: 7, Size: 64x64, "
              "Lora hashes: \"x: 0123456789ab\", TI hashes: \"emb: abcdef012345\", Hires upscaler: Latent",
    "multiline": "line one\nline two BREAK three\nNegative prompt: a\nb\nSteps: 1, Seed: -1, Size: 8x8",
    "no_params": "just a prompt without parameters",
}
for k, v in infotexts.items():
    out("infotext", k + ".txt", v)

prompts = {
    "emphasis": "\x14\x00a (red:1.3) [blue] ((circle)) \\(literal\\) BREAK on a (green:0.5) background",
    "schedule": "\x14\x00a [cat:dog:0.5] [[red|blue]|green] [x::3] [:y:2] in the [rain:snow:10]",
    "and_lora": "\x0a\x01a cat :1.2 AND a dog:0.5 AND <lora:demo_monochrome:0.8> <lora:a:te=0.5:unet=1> <hypernet:h:1>",
    "hires": "\x10\x03[from:to:25] (a:1.1) [b|c]",
}
for k, v in prompts.items():
    out("prompt", k, v)
for k, v in prompts.items():
    out("tokenizer", k, v[2:] + " , , " * 30)
out("tokenizer", "entities", "caf\u00e9 &amp; &lt;3 &#x1F600; \u732b\u304c  red\tcircle\nsquare \xff")
print("seeds written under", os.path.join(here, "corpus"))
