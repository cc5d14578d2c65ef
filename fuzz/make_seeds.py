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

# LoRA files: kohya (linear, 1x1 conv, 3x3 conv with alpha), PEFT (lora_A / lora_B, diffusers module names).
f16 = lambda *shape: rng.standard_normal(shape).astype(np.float16).tobytes()
out("lora", "kohya_mixed.safetensors", safetensors({
    "lora_unet_input_blocks_1_1_proj_in.lora_down.weight": ("F16", [2, 4, 1, 1], f16(2, 4, 1, 1)),
    "lora_unet_input_blocks_1_1_proj_in.lora_up.weight": ("F16", [4, 2, 1, 1], f16(4, 2, 1, 1)),
    "lora_unet_input_blocks_1_1_proj_in.alpha": ("F16", [], np.float16(1).tobytes()),
    "lora_unet_down_blocks_1_resnets_0_conv1.lora_down.weight": ("F16", [2, 3, 3, 3], f16(2, 3, 3, 3)),
    "lora_unet_down_blocks_1_resnets_0_conv1.lora_up.weight": ("F16", [5, 2, 1, 1], f16(5, 2, 1, 1)),
    "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": ("F32", [1, 3],
        rng.standard_normal(3).astype(np.float32).tobytes()),
    "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": ("BF16", [3, 1],
        (rng.standard_normal(3).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()),
}, {"ss_network_dim": "2", "ss_network_alpha": "1"}))
out("lora", "peft.safetensors", safetensors({
    "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight": ("F16", [2, 4], f16(2, 4)),
    "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight": ("F16", [4, 2], f16(4, 2)),
    "text_encoder.text_model.encoder.layers.11.mlp.fc2.lora_A.weight": ("F16", [1, 2], f16(1, 2)),
    "text_encoder.text_model.encoder.layers.11.mlp.fc2.lora_B.weight": ("F16", [2, 1], f16(2, 1)),
}))

# A1111 request bodies (txt2img, img2img with a PNG and a mask as data: URL / plain base64, override_settings).
import base64
b = io.BytesIO()
Image.fromarray(px[..., :3]).save(b, "PNG")
png64 = base64.b64encode(b.getvalue()).decode()
b = io.BytesIO()
Image.fromarray((px[..., 0] > 128).astype(np.uint8) * 255).save(b, "PNG")
mask64 = base64.b64encode(b.getvalue()).decode()
out("a1111_request", "txt2img.json", json.dumps({
    "prompt": "a (red:1.2) circle BREAK <lora:x:0.8>", "negative_prompt": "blurry", "steps": 4, "cfg_scale": 7.5,
    "seed": 42, "subseed": 3, "subseed_strength": 0.2, "sampler_name": "DPM++ 2M", "scheduler": "Karras",
    "width": 64, "height": 48, "batch_size": 1, "n_iter": 2, "enable_hr": True, "hr_scale": 2,
    "hr_upscaler": "Latent", "denoising_strength": 0.5, "override_settings": {"CLIP_stop_at_last_layers": 2,
    "randn_source": "CPU"}, "send_images": True, "save_images": False}))
out("a1111_request", "img2img.json", json.dumps({
    "prompt": "a cat", "init_images": ["data:image/png;base64," + png64], "mask": mask64, "steps": 2,
    "denoising_strength": 0.6, "resize_mode": 1, "mask_blur": 4, "inpainting_fill": 1, "inpaint_full_res": True,
    "inpaint_full_res_padding": 8, "inpainting_mask_invert": 0, "width": 8, "height": 8}))
out("a1111_request", "options.json", json.dumps({"precision": "fp32", "type": "q8_0", "threads": 2}))
out("base64", "png.txt", png64)
out("base64", "data_url.txt", "data:image/png;base64," + png64[:60] + "\n" + png64[60:])
out("base64", "padding.txt", "YQ== YWI=\nYWJj")

# Diffusers key names (unet lines, then vae/ lines): a small SD 1.x-like layout.
keys = ["conv_in.weight", "time_embedding.linear_1.weight", "down_blocks.0.resnets.0.norm1.weight",
        "down_blocks.0.resnets.1.conv2.weight", "down_blocks.0.attentions.0.proj_in.weight",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight", "down_blocks.0.downsamplers.0.conv.weight",
        "down_blocks.1.resnets.0.conv_shortcut.weight", "mid_block.resnets.1.time_emb_proj.weight",
        "mid_block.attentions.0.norm.weight", "up_blocks.0.resnets.2.conv1.weight", "up_blocks.0.upsamplers.0.conv.weight",
        "up_blocks.1.attentions.2.proj_out.weight", "conv_norm_out.weight", "conv_out.bias",
        "text_model.encoder.layers.0.self_attn.k_proj.weight", "text_model.final_layer_norm.weight",
        "vae/encoder.down_blocks.0.resnets.0.norm1.weight", "vae/encoder.mid_block.attentions.0.to_q.weight",
        "vae/decoder.up_blocks.0.resnets.2.conv2.weight", "vae/decoder.up_blocks.3.upsamplers.0.conv.weight",
        "vae/decoder.mid_block.resnets.1.norm2.bias", "vae/quant_conv.weight", "vae/post_quant_conv.bias"]
out("diffusers_names", "sd1_like.txt", "\n".join(keys))

# HTTP requests with multipart/form-data bodies (the OpenAI-style /v1/images/edits: image, mask, fields), one
# urlencoded and one with a chunked body; the PNG is the corpus' smallest.
def multipart(boundary, parts):
    body = b""
    for name, filename, ctype, data in parts:
        body += b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"" + name + b"\""
        if filename is not None:
            body += b"; filename=\"" + filename + b"\""
        body += b"\r\n"
        if ctype is not None:
            body += b"Content-Type: " + ctype + b"\r\n"
        body += b"\r\n" + data + b"\r\n"
    return body + b"--" + boundary + b"--\r\n"


def request(path, ctype, body, extra=b""):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: localhost\r\nContent-Type: " + ctype + b"\r\n" + extra +
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


with open(os.path.join(here, "corpus", "png", "1.png"), "rb") as f:
    tiny_png = f.read()
edit = multipart(b"nbBOUNDARY", [(b"image", b"a.png", b"image/png", tiny_png), (b"mask", b"m.png", b"image/png", tiny_png),
                                 (b"prompt", None, None, b"a red circle"), (b"n", None, None, b"2"),
                                 (b"size", None, None, b"64x64"), (b"response_format", None, None, b"b64_json")])
out("multipart", "edits.http", request(b"/v1/images/edits", b"multipart/form-data; boundary=nbBOUNDARY", edit))
quoted = multipart(b"a'b()+_,-./:=?", [(b"prompt", None, b"text/plain; charset=utf-8", b"--a'b( not the end"),
                                        (b"image", b"x\\\"y.png", None, b"")])
out("multipart", "quoted_boundary.http",
    request(b"/v1/images/edits", b"multipart/form-data; boundary=\"a'b()+_,-./:=?\"", quoted))
out("multipart", "urlencoded.http", request(b"/sdapi/v1/png-info", b"application/x-www-form-urlencoded",
                                            b"image=abc%20d&prompt=%E2%9C%93+x"))
chunked = b"1a\r\n" + edit[:26] + b"\r\n" + ("%x" % (len(edit) - 26)).encode() + b"\r\n" + edit[26:] + b"\r\n0\r\n\r\n"
out("multipart", "chunked.http",
    (b"POST /v1/images/edits HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=nbBOUNDARY\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n" + chunked))
print("seeds written under", os.path.join(here, "corpus"))
