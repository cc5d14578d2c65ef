"""Reference outputs of the PyTorch modules on a shipped checkpoint, for the C++ parity test.

    /usr/bin/python3 tools/demo_model/parity.py models/demo

Reads <dir>/demo.safetensors (fp16, upcast to fp32 exactly as the engine does), runs CLIP on a domain prompt,
the UNet on a fixed latent/timestep with that context and the VAE decoder on a fixed latent, and writes
<dir>/parity.safetensors (F32/I64): ids [1,77] (as F32), context [1,77,D], x [1,4,8,8], t [1], eps [1,4,8,8],
z_scaled [1,4,8,8], image [1,3,64,64] (decode of z_scaled / 0.18215). tests/e2e/demo_test.cpp compares.
"""
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import domain  # noqa: E402
from modules import AutoencoderKL, CLIPText, UNet  # noqa: E402
from tokenizer import Tokenizer  # noqa: E402
from train import SCALE, write_safetensors  # noqa: E402

PROMPT = "a small yellow square on the left, green background"


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    types = {"F16": np.float16, "F32": np.float32, "I64": np.int64}
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], types[v["dtype"]]).reshape(v["shape"]).copy())
    return out, header["__metadata__"]


def sub(state, prefix):
    return {k[len(prefix):]: v.float() for k, v in state.items() if k.startswith(prefix)}


def load(folder):
    """<folder>/demo.safetensors -> (clip, unet, vae) PyTorch modules in eval mode, fp32."""
    state, meta = read_safetensors(os.path.join(folder, "demo.safetensors"))
    clip = CLIPText(json.loads(meta["clip_config"]))
    clip_state = sub(state, "cond_stage_model.transformer.text_model.")
    clip_state.pop("embeddings.position_ids")
    clip.load_state_dict(clip_state)
    unet = UNet(json.loads(meta["unet_config"]))
    unet.load_state_dict(sub(state, "model.diffusion_model."))
    vae = AutoencoderKL(json.loads(meta["vae_ddconfig"]))
    vae.load_state_dict(sub(state, "first_stage_model."))
    return clip.eval(), unet.eval(), vae.eval()


@torch.no_grad()
def main(folder):
    torch.set_num_threads(int(os.environ.get("NB_TRAIN_THREADS", "1")))
    clip, unet, vae = load(folder)
    tok = Tokenizer(domain.WORDS)
    ids = torch.tensor([tok.ids77(PROMPT)])
    ctx = clip(ids)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 4, 8, 8, generator=g)
    t = torch.tensor([437.0])
    eps = unet(x, t, ctx)
    z = torch.randn(1, 4, 8, 8, generator=g)
    image = vae.decode(z / SCALE)
    write_safetensors(os.path.join(folder, "parity.safetensors"),
                      {"ids": ids.float(), "context": ctx, "x": x, "t": t, "eps": eps, "z_scaled": z, "image": image},
                      {"prompt": PROMPT})


if __name__ == "__main__":
    main(sys.argv[1])
