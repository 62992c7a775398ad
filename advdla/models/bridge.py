"""Turn a Hugging Face causal LM into the TransformerBridge advdla needs, and describe it with a model card.

Context: TransformerLens 4.x wraps HF models in a ``TransformerBridge``. advdla needs three things from it:
compatibility mode (norm weights folded into the next matrices and the unembedding centred, which is what
makes per-component DLAs sum to the logit difference), per-head results (``blocks.L.attn.hook_result``) and
per-head q/k/v inputs (``blocks.L.hook_q_input`` ...). :func:`bridge_from_hf` sets all three.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class ModelCard:
    """What a suite needs to know about the model it was built on."""

    name: str
    source: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    d_vocab: int
    n_ctx: int
    positional: str
    normalization: str
    weights_fingerprint: str
    tokenizer_fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def weights_fingerprint(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over (name, dtype, shape, bytes) of every tensor, names sorted: same weights, same fingerprint."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 of the tokenizer's full vocabulary (token -> id) and its special tokens."""
    payload = {"vocab": sorted(tokenizer.get_vocab().items()), "special": tokenizer.all_special_tokens}
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()


def bridge_from_hf(hf_model: Any, tokenizer: Any, *, name: str, source: str, device: str = "cpu") -> Any:
    """Wrap an HF model + tokenizer: compatibility mode, per-head results, split q/k/v inputs, and a card."""
    from transformer_lens.model_bridge.sources import build_bridge_from_module

    arch = type(hf_model).__name__
    fp = weights_fingerprint(hf_model.state_dict())  # before the bridge folds norms into the weights
    hf_model = hf_model.to(device).eval()
    # advdla tokenizes itself (see advdla.corpus), so the bridge gets no tokenizer to re-configure.
    bridge = build_bridge_from_module(hf_model, arch, hf_config=hf_model.config, tokenizer=None, model_name=name)
    bridge.enable_compatibility_mode(disable_warnings=True)
    bridge.set_use_attn_result(True)
    bridge.set_use_split_qkv_input(True)
    bridge.eval()
    for p in bridge.parameters():
        p.requires_grad_(False)
    bridge.tokenizer = tokenizer
    bridge.advdla_card = _card(bridge.cfg, name=name, source=source, weights_fp=fp, tokenizer=tokenizer)
    return bridge


def _card(cfg: Any, *, name: str, source: str, weights_fp: str, tokenizer: Any) -> ModelCard:
    return ModelCard(
        name=name,
        source=source,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        n_kv_heads=getattr(cfg, "n_key_value_heads", None) or cfg.n_heads,
        d_model=cfg.d_model,
        d_head=cfg.d_head,
        d_vocab=cfg.d_vocab,
        n_ctx=cfg.n_ctx,
        positional=str(getattr(cfg, "positional_embedding_type", "standard")),
        normalization=str(getattr(cfg, "normalization_type", "LN")),
        weights_fingerprint=weights_fp,
        tokenizer_fingerprint=tokenizer_fingerprint(tokenizer),
    )


def model_card(bridge: Any) -> ModelCard:
    """The card :func:`advdla.models.load_model` attached to a bridge."""
    return bridge.advdla_card


@contextmanager
def lean(bridge: Any) -> Iterator[Any]:
    """Per-head results and split q/k/v inputs switched off for the duration (restored after).

    Those two hook families make the bridge materialise a [batch, pos, head, d_model] tensor per layer (and a
    per-head copy of the residual for q, k and v). Code that reads a head's output only at a few positions
    reads ``hook_z`` and applies W_O itself (:func:`head_output`); same numbers within float rounding, and
    close to a plain HF forward's speed.
    """
    before = (bool(getattr(bridge.cfg, "use_attn_result", False)),
              bool(getattr(bridge.cfg, "use_split_qkv_input", False)))
    bridge.set_use_attn_result(False)
    bridge.set_use_split_qkv_input(False)
    try:
        yield bridge
    finally:
        bridge.set_use_attn_result(before[0])
        bridge.set_use_split_qkv_input(before[1])


def head_output(bridge: Any, z: Any, layer: int, head: int) -> Any:
    """A head's output (its share of the attention output, without b_O) from its ``hook_z`` slice: z @ W_O[head]."""
    return z @ bridge.blocks[layer].attn.W_O[head]
