"""Tiny SD 1.x components written to match ldm / openai-CLIP semantics and key names.

state_dict() keys equal the LDM single-file names below their prefixes:
  UNet  -> model.diffusion_model.*            (ldm/modules/diffusionmodules/openaimodel.py UNetModel)
  VAE   -> first_stage_model.*                (ldm/modules/diffusionmodules/model.py Encoder/Decoder)
  CLIP  -> cond_stage_model.transformer.text_model.*  (HF CLIPTextModel names)
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def gn(ch, eps):
    return nn.GroupNorm(32, ch, eps=eps)


# ----------------------------------------------------------------------------------------------- UNet
def timestep_embedding(t, dim):
    # ldm: cat(cos(t f), sin(t f)), f_j = exp(-ln(10000) j / half)
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    def __init__(self, ch, emb_ch, out_ch):
        super().__init__()
        self.in_layers = nn.Sequential(gn(ch, 1e-5), nn.SiLU(), nn.Conv2d(ch, out_ch, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_ch, out_ch))
        self.out_layers = nn.Sequential(gn(out_ch, 1e-5), nn.SiLU(), nn.Dropout(0.0),
                                        nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip_connection = nn.Conv2d(ch, out_ch, 1) if ch != out_ch else nn.Identity()

    def forward(self, x, emb):
        h = self.in_layers(x) + self.emb_layers(emb)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class CrossAttention(nn.Module):
    def __init__(self, dim, ctx_dim, heads):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(ctx_dim, dim, bias=False)
        self.to_v = nn.Linear(ctx_dim, dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(0.0))

    def forward(self, x, ctx=None):
        ctx = x if ctx is None else ctx
        b, n, d = x.shape
        h = self.heads
        q = self.to_q(x).view(b, n, h, d // h).transpose(1, 2)
        k = self.to_k(ctx).view(b, ctx.shape[1], h, d // h).transpose(1, 2)
        v = self.to_v(ctx).view(b, ctx.shape[1], h, d // h).transpose(1, 2)
        w = torch.softmax(q @ k.transpose(-1, -2) * (d // h) ** -0.5, dim=-1)
        return self.to_out((w @ v).transpose(1, 2).reshape(b, n, d))


class GEGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x):
        a, gate = self.proj(x).chunk(2, dim=-1)
        return a * F.gelu(gate)


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, ctx_dim, heads):
        super().__init__()
        self.attn1 = CrossAttention(dim, dim, heads)
        self.ff = nn.Module()
        self.ff.net = nn.Sequential(GEGLU(dim, 4 * dim), nn.Dropout(0.0), nn.Linear(4 * dim, dim))
        self.attn2 = CrossAttention(dim, ctx_dim, heads)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x, ctx):
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), ctx)
        return x + self.ff.net(self.norm3(x))


class SpatialTransformer(nn.Module):
    def __init__(self, ch, ctx_dim, heads):
        super().__init__()
        self.norm = gn(ch, 1e-6)
        self.proj_in = nn.Conv2d(ch, ch, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(ch, ctx_dim, heads)])
        self.proj_out = nn.Conv2d(ch, ch, 1)

    def forward(self, x, ctx):
        b, c, hh, ww = x.shape
        h = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)  # (B, HW, C)
        for blk in self.transformer_blocks:
            h = blk(h, ctx)
        return x + self.proj_out(h.transpose(1, 2).reshape(b, c, hh, ww))


class Downsample(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.op = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def run_block(block, h, emb, ctx):
    for layer in block:
        if isinstance(layer, ResBlock):
            h = layer(h, emb)
        elif isinstance(layer, SpatialTransformer):
            h = layer(h, ctx)
        else:
            h = layer(h)
    return h


class UNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        mc, ctx_dim, nrb = cfg["model_channels"], cfg["context_dim"], cfg["num_res_blocks"]
        heads, mult, attn_res = cfg["num_heads"], cfg["channel_mult"], cfg["attention_resolutions"]
        emb_ch = 4 * mc
        self.mc = mc
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))
        self.input_blocks = nn.ModuleList([nn.ModuleList([nn.Conv2d(cfg["in_channels"], mc, 3, padding=1)])])
        chans, ch, ds = [mc], mc, 1
        for level, m in enumerate(mult):
            for _ in range(nrb):
                layers = [ResBlock(ch, emb_ch, m * mc)]
                ch = m * mc
                if ds in attn_res:
                    layers.append(SpatialTransformer(ch, ctx_dim, heads))
                self.input_blocks.append(nn.ModuleList(layers))
                chans.append(ch)
            if level != len(mult) - 1:
                self.input_blocks.append(nn.ModuleList([Downsample(ch)]))
                chans.append(ch)
                ds *= 2
        self.middle_block = nn.ModuleList([ResBlock(ch, emb_ch, ch), SpatialTransformer(ch, ctx_dim, heads),
                                           ResBlock(ch, emb_ch, ch)])
        self.output_blocks = nn.ModuleList()
        for level, m in list(enumerate(mult))[::-1]:
            for i in range(nrb + 1):
                layers = [ResBlock(ch + chans.pop(), emb_ch, m * mc)]
                ch = m * mc
                if ds in attn_res:
                    layers.append(SpatialTransformer(ch, ctx_dim, heads))
                if level and i == nrb:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(nn.ModuleList(layers))
        self.out = nn.Sequential(gn(ch, 1e-5), nn.SiLU(), nn.Conv2d(mc, cfg["out_channels"], 3, padding=1))

    def forward(self, x, t, ctx):
        emb = self.time_embed(timestep_embedding(t, self.mc))
        hs, h = [], x
        for blk in self.input_blocks:
            h = run_block(blk, h, emb, ctx)
            hs.append(h)
        h = run_block(self.middle_block, h, emb, ctx)
        for blk in self.output_blocks:
            h = run_block(blk, torch.cat([h, hs.pop()], dim=1), emb, ctx)
        return self.out(h)


# ------------------------------------------------------------------------------------------------ VAE
class VResBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1, self.conv1 = gn(cin, 1e-6), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = gn(cout, 1e-6), nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)
        self.cin, self.cout = cin, cout

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if self.cin != self.cout else x) + h


class VAttn(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = gn(c, 1e-6)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x):
        b, c, hh, ww = x.shape
        h = self.norm(x)
        q = self.q(h).flatten(2).transpose(1, 2)  # (B, HW, C)
        k = self.k(h).flatten(2)                  # (B, C, HW)
        v = self.v(h).flatten(2)
        w = torch.softmax(q @ k * c ** -0.5, dim=-1)        # (B, HWq, HWk)
        out = (v @ w.transpose(1, 2)).reshape(b, c, hh, ww)
        return x + self.proj_out(out)


class VDown(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


def vmid(c):
    m = nn.Module()
    m.block_1, m.attn_1, m.block_2 = VResBlock(c, c), VAttn(c), VResBlock(c, c)
    return m


class Encoder(nn.Module):
    def __init__(self, ch, mult, nrb, z):
        super().__init__()
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
        self.down = nn.ModuleList()
        cin = ch
        for i, m in enumerate(mult):
            lvl = nn.Module()
            lvl.block = nn.ModuleList()
            for _ in range(nrb):
                lvl.block.append(VResBlock(cin, ch * m))
                cin = ch * m
            if i != len(mult) - 1:
                lvl.downsample = VDown(cin)
            self.down.append(lvl)
        self.mid = vmid(cin)
        self.norm_out, self.conv_out = gn(cin, 1e-6), nn.Conv2d(cin, 2 * z, 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for lvl in self.down:
            for b in lvl.block:
                h = b(h)
            if hasattr(lvl, "downsample"):
                h = lvl.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, ch, mult, nrb, z):
        super().__init__()
        cin = ch * mult[-1]
        self.conv_in = nn.Conv2d(z, cin, 3, padding=1)
        self.mid = vmid(cin)
        ups = []
        for i in reversed(range(len(mult))):
            lvl = nn.Module()
            lvl.block = nn.ModuleList()
            for _ in range(nrb + 1):
                lvl.block.append(VResBlock(cin, ch * mult[i]))
                cin = ch * mult[i]
            if i != 0:
                lvl.upsample = Upsample(cin)
            ups.insert(0, lvl)
        self.up = nn.ModuleList(ups)
        self.norm_out, self.conv_out = gn(cin, 1e-6), nn.Conv2d(cin, 3, 3, padding=1)

    def forward(self, z):
        h = self.conv_in(z)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        for lvl in reversed(self.up):
            for b in lvl.block:
                h = b(h)
            if hasattr(lvl, "upsample"):
                h = lvl.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class AutoencoderKL(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, mult, nrb, z = cfg["ch"], cfg["ch_mult"], cfg["num_res_blocks"], cfg["z_channels"]
        self.encoder, self.decoder = Encoder(ch, mult, nrb, z), Decoder(ch, mult, nrb, z)
        self.quant_conv, self.post_quant_conv = nn.Conv2d(2 * z, 2 * z, 1), nn.Conv2d(z, z, 1)

    def moments(self, x):
        m = self.quant_conv(self.encoder(x))
        mean, logvar = m.chunk(2, dim=1)
        return mean, torch.clamp(logvar, -30.0, 20.0)

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


# ----------------------------------------------------------------------------------------------- CLIP
class CLIPLayer(nn.Module):
    def __init__(self, d, heads, inter):
        super().__init__()
        self.heads = heads
        self.self_attn = nn.Module()
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self.self_attn, n, nn.Linear(d, d))
        self.layer_norm1, self.layer_norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(d, inter), nn.Linear(inter, d)

    def forward(self, x, mask):
        b, n, d = x.shape
        h, a = self.heads, self.self_attn
        y = self.layer_norm1(x)
        q, k, v = (p(y).view(b, n, h, d // h).transpose(1, 2) for p in (a.q_proj, a.k_proj, a.v_proj))
        w = torch.softmax(q @ k.transpose(-1, -2) * (d // h) ** -0.5 + mask, dim=-1)
        x = x + a.out_proj((w @ v).transpose(1, 2).reshape(b, n, d))
        y = self.mlp.fc1(self.layer_norm2(x))
        return x + self.mlp.fc2(y * torch.sigmoid(1.702 * y))  # quick_gelu


class CLIPText(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["hidden_size"]
        self.embeddings = nn.Module()
        self.embeddings.token_embedding = nn.Embedding(cfg["vocab_size"], d)
        self.embeddings.position_embedding = nn.Embedding(cfg["max_position_embeddings"], d)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList([CLIPLayer(d, cfg["num_attention_heads"], cfg["intermediate_size"])
                                             for _ in range(cfg["num_hidden_layers"])])
        self.final_layer_norm = nn.LayerNorm(d)
        n = cfg["max_position_embeddings"]
        self.register_buffer("mask", torch.full((n, n), float("-inf")).triu(1), persistent=False)

    def forward(self, ids):  # (B, 77) int64 -> last_hidden_state (B, 77, D)
        x = self.embeddings.token_embedding(ids) + self.embeddings.position_embedding.weight[None, : ids.shape[1]]
        for layer in self.encoder.layers:
            x = layer(x, self.mask)
        return self.final_layer_norm(x)
