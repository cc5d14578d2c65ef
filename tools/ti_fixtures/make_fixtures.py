#!/usr/bin/env python3
"""Writes the textual-inversion fixtures of tests/unit/embedding_test.cpp (tests/data/ti/) with torch.save,
so the restricted torch zip reader is tested on what PyTorch itself writes:
  a1111_redcircle.pt    A1111's layout (textual_inversion.py Embedding.save): string_to_param {'*': [2, 64]}
                        holding the demo model's token-embedding rows of "red" and "circle"
  ldm_paramdict.pt      the original textual-inversion repo's layout: string_to_param as a torch.nn.ParameterDict
  diffusers_blue.bin    a diffusers concept: {'<blue>': [64]} (one 1-D vector: "blue")
Run once from the repository root: python3 tools/ti_fixtures/make_fixtures.py (needs torch)."""
import json
import struct

import torch

DEMO = "models/demo/demo.safetensors"
KEY = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"


def token_rows(words):
    with open(DEMO, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        e = header[KEY]
        dtype = {"F32": torch.float32, "F16": torch.float16}[e["dtype"]]
        rows, width = e["shape"]
        begin, end = e["data_offsets"]
        f.seek(8 + n + begin)
        table = torch.frombuffer(bytearray(f.read(end - begin)), dtype=dtype).reshape(rows, width).float()
    vocab = json.load(open("models/demo/vocab.json"))
    return torch.stack([table[vocab[w + "</w>"]].clone() for w in words])


red_circle = token_rows(["red", "circle"])
vec = red_circle.clone().requires_grad_(True)
torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": vec}, "name": "redcircle", "step": 500,
            "sd_checkpoint": "7d1e4ea4", "sd_checkpoint_name": "demo"}, "tests/data/ti/a1111_redcircle.pt")
params = torch.nn.ParameterDict({"*": torch.nn.Parameter(red_circle.clone())})
torch.save({"string_to_token": {"*": 265}, "string_to_param": params}, "tests/data/ti/ldm_paramdict.pt")
torch.save({"<blue>": token_rows(["blue"])[0].clone()}, "tests/data/ti/diffusers_blue.bin")
