"""A TransformerLens-format checkpoint folder written from random tensors (NeelNanda's layout: config.json,
``model_final.pth``, a tokenizer), for the tests of the gelu-4l loader and of attribution on such a model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from advdla.models.tiny import byte_tokenizer

SMALL = dict(n_layers=2, d_model=32, n_heads=4, d_head=8, d_mlp=64, d_vocab=300, n_ctx=40)
REAL = dict(n_layers=4, d_model=512, n_heads=8, d_head=64, d_mlp=2048, d_vocab=48262, n_ctx=1024)  # GELU-4L's


def write_tl_checkpoint(path: Path, shapes: dict, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """A NeelNanda-format folder: TL-style config.json, ``model_final.pth`` and a (byte) tokenizer."""
    g = torch.Generator().manual_seed(seed)
    L, d, h, e, m, v, n = (shapes[k] for k in ("n_layers", "d_model", "n_heads", "d_head", "d_mlp", "d_vocab", "n_ctx"))

    def r(*shape, scale=0.05):  # about the scale of trained weights: softmaxes neither flat nor saturated
        return torch.randn(*shape, generator=g) * scale

    sd = {"embed.W_E": r(v, d, scale=0.5), "pos_embed.W_pos": r(n, d, scale=0.2), "ln_final.w": 1 + r(d),
          "ln_final.b": r(d), "unembed.W_U": r(d, v, scale=1 / math.sqrt(d)), "unembed.b_U": torch.zeros(v)}
    for l in range(L):
        b = f"blocks.{l}."
        sd |= {b + "ln1.w": 1 + r(d), b + "ln1.b": r(d), b + "ln2.w": 1 + r(d), b + "ln2.b": r(d),
               b + "attn.W_O": r(h, e, d), b + "attn.b_O": r(d), b + "mlp.W_in": r(d, m), b + "mlp.b_in": r(m),
               b + "mlp.W_out": r(m, d), b + "mlp.b_out": r(d),
               b + "attn.mask": torch.tril(torch.ones(n, n)).bool(), b + "attn.IGNORE": torch.tensor(-1e5)}
        sd |= {b + f"attn.W_{x}": r(h, d, e, scale=2 / math.sqrt(d)) for x in "QKV"}
        sd |= {b + f"attn.b_{x}": r(h, e) for x in "QKV"}
    path.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path / "model_final.pth")
    cfg = shapes | {
        "act_fn": "gelu",
        "normalization_type": "LN",
        "attn_only": False,
        "positional_embedding_type": "standard",
        "tokenizer_name": "NeelNanda/gpt-neox-tokenizer-digits",
    }
    (path / "config.json").write_text(json.dumps(cfg))
    byte_tokenizer().save_pretrained(path)
    return sd
