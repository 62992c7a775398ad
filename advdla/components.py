"""Component names <-> indices: the one parser and formatter for ``L0H2``, ``MLP3``, ``embed``, ``pos_embed``, ``bias``.

Context: every advdla result (a DLA, a patching effect, a suite row) is keyed by a component. A component is a
term of the residual-stream decomposition at the last position: the token embedding, the positional
embedding (absent under rotary embeddings), each attention head's output, each MLP layer's output, and the
sum of all biases that no single head or MLP owns (attention output biases, the unembedding bias).
Together they sum to the final residual stream, which is why their DLAs sum to the logit difference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from advdla.errors import AdvdlaError, did_you_mean

_HEAD = re.compile(r"^L(\d+)H(\d+)$")
_MLP = re.compile(r"^MLP(\d+)$")
_SINGLETONS = ("embed", "pos_embed", "bias")


@dataclass(frozen=True, order=True)
class Component:
    """One term of the residual decomposition. ``kind`` is 'head', 'mlp', 'embed', 'pos_embed' or 'bias'."""

    kind: str
    layer: int = -1
    head: int = -1

    @property
    def name(self) -> str:
        if self.kind == "head":
            return f"L{self.layer}H{self.head}"
        if self.kind == "mlp":
            return f"MLP{self.layer}"
        return self.kind

    def __str__(self) -> str:  # components print as their names
        return self.name


def has_pos_embed(cfg: Any) -> bool:
    """Learned absolute positions exist (GPT-2, GELU-4L) unless the model uses rotary embeddings."""
    return getattr(cfg, "positional_embedding_type", "standard") not in ("rotary", "alibi")


def all_components(cfg: Any) -> list[Component]:
    """Every component of a model, in residual-stream order: embeddings, then per layer its heads and MLP, then bias."""
    comps = [Component("embed")]
    if has_pos_embed(cfg):
        comps.append(Component("pos_embed"))
    for layer in range(cfg.n_layers):
        comps += [Component("head", layer, h) for h in range(cfg.n_heads)]
        comps.append(Component("mlp", layer))
    comps.append(Component("bias"))
    return comps


def head_components(cfg: Any) -> list[Component]:
    """All attention heads, layer-major."""
    return [Component("head", l, h) for l in range(cfg.n_layers) for h in range(cfg.n_heads)]


def parse_component(name: str, cfg: Any) -> Component:
    """Parse ``L0H2`` / ``MLP3`` / ``embed`` / ``pos_embed`` / ``bias`` and check the model has it."""
    text = name.strip()
    if m := _HEAD.match(text):
        comp = Component("head", int(m[1]), int(m[2]))
    elif m := _MLP.match(text):
        comp = Component("mlp", int(m[1]))
    elif text in _SINGLETONS:
        comp = Component(text)
    else:
        known = [c.name for c in all_components(cfg)]
        raise AdvdlaError(
            f"unknown component {name!r}: use L<layer>H<head>, MLP<layer>, embed, pos_embed or bias.{did_you_mean(text, known)}"
        )
    _check_exists(comp, cfg)
    return comp


def _check_exists(comp: Component, cfg: Any) -> None:
    if comp.kind in ("head", "mlp") and not 0 <= comp.layer < cfg.n_layers:
        raise AdvdlaError(f"component {comp.name} does not exist: the model has layers 0..{cfg.n_layers - 1}")
    if comp.kind == "head" and not 0 <= comp.head < cfg.n_heads:
        raise AdvdlaError(f"component {comp.name} does not exist: the model has heads 0..{cfg.n_heads - 1} per layer")
    if comp.kind == "pos_embed" and not has_pos_embed(cfg):
        raise AdvdlaError("component pos_embed does not exist: this model uses rotary position embeddings")


def parse_components(names: str | list[str], cfg: Any) -> list[Component]:
    """Parse a comma-separated string or a list of names."""
    items = names.split(",") if isinstance(names, str) else names
    return [parse_component(n, cfg) for n in items if n.strip()]


def is_downstream(later: Component, earlier: Component) -> bool:
    """Can ``later`` read what ``earlier`` wrote? (Heads of layer l read resid_pre l; MLP l also reads layer l's heads.)"""
    if later.kind not in ("head", "mlp"):
        return False
    if earlier.kind in ("embed", "pos_embed"):
        return True
    if earlier.kind == "head":
        return later.layer > earlier.layer or (later.kind == "mlp" and later.layer == earlier.layer)
    if earlier.kind == "mlp":
        return later.layer > earlier.layer
    return False
