"""Component names <-> indices: the one parser and formatter for ``L0H2``, ``MLP3``, ``embed``, ``pos_embed``, ``bias``.

Context: every advdla result (a DLA, a patching effect, a suite row) is keyed by a component. A component is a
term of the residual-stream decomposition at the last position: the token embedding, the positional
embedding (absent under rotary embeddings), each attention head's output, each MLP layer's output, and the
sum of all biases that no single head or MLP owns (attention output biases, the unembedding bias).
Together they sum to the final residual stream, which is why their DLAs sum to the logit difference.

Hook names: a component knows where the model exposes it (:attr:`Component.output_hook`, ``z_hook``,
``site``, ``input_hooks``, ``norm_scale_hook``, ``pattern_hook``), and the module-level helpers spell the
per-layer names that belong to no single component (:func:`resid_hook`, :func:`attn_out_hook`,
:data:`LN_FINAL_SCALE` ...). This module (and :mod:`advdla.models`) is the only place that spells a
``blocks.{layer}...`` name: everything else asks here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from advdla.errors import AdvdlaError, did_you_mean

# ------------------------------------------------------------------------------------------- hook names

LN_FINAL_IN = "ln_final.hook_in"  # the final residual stream, before the final norm
LN_FINAL_SCALE = "ln_final.hook_scale"  # the final norm's scale per position, [batch, pos, 1]
EMBED_HOOK = "hook_embed"
POS_EMBED_HOOK = "hook_pos_embed"
RESID_POINTS = ("pre", "mid", "post")


def block_hook(layer: int, name: str) -> str:
    """``blocks.{layer}.{name}``: the one spelling of a block's hook names."""
    return f"blocks.{layer}.{name}"


def resid_hook(layer: int, where: str = "pre") -> str:
    """The residual stream of block ``layer``: before it (``pre``), between attention and MLP (``mid``), after it."""
    if where not in RESID_POINTS:
        raise ValueError(f"resid_hook: where must be one of {RESID_POINTS}, got {where!r}")
    return block_hook(layer, f"hook_resid_{where}")


def attn_result_hook(layer: int) -> str:
    """Every head's output of layer ``layer``, [batch, pos, head, d_model] (needs per-head results switched on)."""
    return block_hook(layer, "attn.hook_result")


def attn_z_hook(layer: int) -> str:
    """Every head's output before W_O of layer ``layer``, [batch, pos, head, d_head]."""
    return block_hook(layer, "attn.hook_z")


def attn_v_hook(layer: int) -> str:
    """The value vectors of layer ``layer``, [batch, pos, kv_head, d_head]."""
    return block_hook(layer, "attn.hook_v")


def attn_out_hook(layer: int) -> str:
    """The attention block's summed output of layer ``layer`` (all heads plus b_O), [batch, pos, d_model]."""
    return block_hook(layer, "hook_attn_out")


def mlp_out_hook(layer: int) -> str:
    """The MLP's output of layer ``layer``, [batch, pos, d_model]."""
    return block_hook(layer, "hook_mlp_out")


def mlp_normalized_hook(layer: int) -> str:
    """The MLP's normalised input (ln2's output) of layer ``layer``, [batch, pos, d_model]."""
    return block_hook(layer, "ln2.hook_normalized")


def post_scale_hook(layer: int, kind: str) -> str:
    """The scale of the sandwich norm after a block's attention (``kind`` 'head') or MLP ('mlp'), [batch, pos, 1]:
    the RMS by which that output is divided before it joins the residual (Gemma; absent elsewhere)."""
    return block_hook(layer, "ln1_post.hook_scale" if kind == "head" else "ln2_post.hook_scale")


def mlp_raw_hook(layer: int) -> str:
    """The MLP's output before its sandwich norm (Gemma; absent elsewhere, where ``hook_mlp_out`` is that)."""
    return block_hook(layer, "ln2_post.hook_in")


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

    @property
    def output_hook(self) -> str:
        """Where its output lives: a head's slice of ``attn.hook_result``, ``hook_mlp_out``, ``hook_embed``..."""
        if self.kind == "head":
            return attn_result_hook(self.layer)
        if self.kind == "mlp":
            return mlp_out_hook(self.layer)
        if self.kind == "embed":
            return EMBED_HOOK
        if self.kind == "pos_embed":
            return POS_EMBED_HOOK
        raise AdvdlaError("component bias has no hook: it is the sum of biases no head or MLP owns")

    @property
    def z_hook(self) -> str:
        """A head's output before W_O (its slice of ``attn.hook_z``)."""
        return attn_z_hook(self._layer_of(("head",), "z_hook"))

    @property
    def site(self) -> str:
        """The hook whose activation advdla patches and differentiates: ``hook_z`` for a head, else the output hook."""
        return self.z_hook if self.kind == "head" else self.output_hook

    @property
    def input_hooks(self) -> tuple[str, ...]:
        """The hooks that carry what the component reads: a head's q, k, v inputs; an MLP's ln2 input (resid_mid)."""
        if self.kind == "head":
            return tuple(block_hook(self.layer, f"hook_{x}_input") for x in "qkv")
        return (block_hook(self._layer_of(("mlp",), "input_hooks"), "ln2.hook_in"),)

    @property
    def norm_scale_hook(self) -> str:
        """The scale of the norm in front of the component: ln1's for a head, ln2's for an MLP."""
        if self.kind == "head":
            return block_hook(self.layer, "ln1.hook_scale")
        return block_hook(self._layer_of(("mlp",), "norm_scale_hook"), "ln2.hook_scale")

    @property
    def pattern_hook(self) -> str:
        """A head's attention pattern (its slice of ``attn.hook_pattern``, [batch, head, query, key])."""
        return block_hook(self._layer_of(("head",), "pattern_hook"), "attn.hook_pattern")

    def _layer_of(self, kinds: tuple[str, ...], what: str) -> int:
        """The layer, after checking the component is of one of ``kinds`` (the ones that have ``what``)."""
        if self.kind not in kinds:
            raise AdvdlaError(f"component {self.name} has no {what}: only {' and '.join(kinds)} components do")
        return self.layer


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


def heads_and_mlps(cfg: Any) -> list[Component]:
    """Every attention head and MLP, in residual-stream order: the components patching can replace, and the one pool
    that truth panels, the search's |DLA| rank and the analysis's writers and readers are drawn from."""
    return [c for c in all_components(cfg) if c.kind in ("head", "mlp")]


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
        raise AdvdlaError(f"unknown component {name!r}: use L<layer>H<head>, MLP<layer>, embed, pos_embed or bias."
                          f"{did_you_mean(text, known)}")
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
    """Can ``later`` read what ``earlier`` wrote? (Heads of layer l read resid_pre l, MLP l also its heads.)"""
    if later.kind not in ("head", "mlp"):
        return False
    if earlier.kind in ("embed", "pos_embed"):
        return True
    if earlier.kind == "head":
        return later.layer > earlier.layer or (later.kind == "mlp" and later.layer == earlier.layer)
    if earlier.kind == "mlp":
        return later.layer > earlier.layer
    return False
