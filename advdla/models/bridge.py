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
from jaxtyping import Float
from torch import Tensor


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
    post_norms: bool = False  # sandwich norms: attention and MLP outputs are normalised before the residual
    bos: int | None = None  # the token every prompt starts with (models that need it, such as Gemma), else None
    sliding_window: int | None = None  # the local attention window of sliding-window layers, if any

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
    tokenizer.advdla_bos = tokenizer.bos_token_id if arch in BOS_ARCHITECTURES else None  # corpus windows read it
    bridge.advdla_post_norms = _probe_post_norms(bridge)
    bridge.advdla_card = _card(bridge.cfg, name=name, source=source, weights_fp=fp, tokenizer=tokenizer,
                               post=bridge.advdla_post_norms is not None, bos=tokenizer.advdla_bos,
                               window=getattr(hf_model.config, "sliding_window", None))
    return bridge


# Architectures trained with a BOS token in front of every text: without it their predictions are poor (Gemma 3
# 270M: "The capital of France is" -> " France" 20.12 without BOS, " the" 19.09 with it).
BOS_ARCHITECTURES = frozenset({"GemmaForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM"})


@dataclass(frozen=True)
class PostNorms:
    """Sandwich norms (Gemma 2 and 3): each block normalises its attention output and its MLP output before adding
    them to the residual stream, ``resid += norm(attn_out)``. ``attn[l]`` and ``mlp[l]`` are those norms'
    effective weights (Gemma's ``1 + w``).

    Why DLA needs them: a head's output reaches the residual only as ``out * attn[l] / scale``, where ``scale`` is
    the RMS of the whole attention output at that position. With that scale frozen from the clean run (as the
    final norm's is), each head's share is linear again, and all components' DLAs sum to the logit difference.
    """

    attn: Float[Tensor, "layer d_model"]
    mlp: Float[Tensor, "layer d_model"]


def post_norms(bridge: Any) -> PostNorms | None:
    """The bridge's sandwich norms (:class:`PostNorms`), or None on a model without them (GPT-2, Llama)."""
    return getattr(bridge, "advdla_post_norms", None)


def _probe_post_norms(bridge: Any) -> PostNorms | None:
    """Read each post-norm's effective weight by running it on a constant vector (RMS 1000: the norm returns its
    weight to within 1e-12), whatever its convention (``w`` or ``1 + w``)."""
    blocks = list(bridge.blocks)
    if not blocks or not all(hasattr(b, "ln1_post") and hasattr(b, "ln2_post") for b in blocks):
        return None
    probe = torch.full((1, 1, bridge.cfg.d_model), 1000.0, device=bridge.W_U.device)
    with torch.no_grad():
        attn = torch.stack([b.ln1_post.original_component(probe)[0, 0] for b in blocks])
        mlp = torch.stack([b.ln2_post.original_component(probe)[0, 0] for b in blocks])
    return PostNorms(attn.float(), mlp.float())


def _card(cfg: Any, *, name: str, source: str, weights_fp: str, tokenizer: Any, post: bool, bos: int | None,
          window: int | None) -> ModelCard:
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
        post_norms=post,
        bos=bos,
        sliding_window=window,
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
