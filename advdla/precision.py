"""The precision policy, in one place: bf16 for what only screens, fp32 for everything stored, verified or reported.

Context: these CPUs have bf16 matrix units (AMX, AVX-512 bf16); a 2048^3 ``torch.mm`` runs several times faster on
bf16 tensors than on fp32 ones. Most of advdla's forwards only *screen*: the search scores thousands of candidates
to re-verify a few (:class:`advdla.search.evaluate.Evaluator`), the natural scan reads thousands of windows to keep
a few dozen (:mod:`advdla.suites.natural`). Screening decides what to look at; it never writes a number that is
kept. So:

- ``bf16`` (the default for screening) runs those forwards on a bf16 copy of the model (:func:`screening_model`);
- ``fp32`` runs them on the model itself, exactly as before this policy existed;
- every number that is stored as truth, verified or reported is computed on the fp32 model, whatever the
  precision: a search hit is re-scored on the slow fp32 path (:func:`advdla.search.evaluate.verify`), a natural
  control chosen by a bf16 scan is re-checked in fp32 before it enters a suite, and ground truth never screens.

Intuition: a bf16 screen moves LD and DLA by a few hundredths of a logit (``benchmarks/precision_deviation.py``
measures it on the default model), so a decision near a threshold can flip. A flipped "hit" costs one slow fp32
re-verification that rejects it; a flipped "miss" is a candidate not looked at, which the search replaces by
others. Neither can put a wrong number on disk, because nothing on disk comes from the screen.

Why a bf16 copy and not ``torch.autocast``: autocast re-casts every weight at every forward and keeps the
elementwise work (norms, rotary, the per-head copies of the residual) in fp32; a copy holds bf16 weights once.
The copy also drops the split q/k/v inputs (a per-head copy of the residual per layer), which no screen patches:
the evaluator patches ``hook_z`` and the natural scan reads head outputs. The copy costs one model's memory in
bf16 (half the fp32 model) and is made once per model object per process.
"""

from __future__ import annotations

import contextlib
import copy
import io
import weakref
from typing import Any

import torch

from advdla.errors import AdvdlaError, did_you_mean

__all__ = ["PRECISIONS", "DEFAULT_PRECISION", "MIN_BF16_PARAMETERS", "check_precision", "effective_precision",
           "screening_model", "screen_dtype"]

PRECISIONS = ("bf16", "fp32")
DEFAULT_PRECISION = "bf16"  # for the screening paths only; nothing stored or reported is ever computed in it
# Below this many parameters a bf16 screen stays fp32: a small model's forward is not matmul-bound, so bf16 gains
# nothing there, and hand-set models with near one-hot attention screen badly in it (planted-erasure: TE moved by up
# to 7.9 logits on random prompts, and a suite build's search found fewer candidates than in fp32).
MIN_BF16_PARAMETERS = 10_000_000
_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}

# model object -> its bf16 screening copy. Weak keys: the copy goes when the model does. Kept outside the model
# because an nn.Module attribute holding a module would register it as a submodule (and in its state_dict).
_COPIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def check_precision(name: str) -> str:
    """``name`` if it is a precision advdla knows (``bf16``, ``fp32``), else one line saying which ones are."""
    if name not in PRECISIONS:
        raise AdvdlaError(f"unknown precision {name!r}: use bf16 (screen on the bf16 matrix units; the default) or "
                          f"fp32 (screen in fp32 too).{did_you_mean(name, PRECISIONS)}")
    return name


def screen_dtype(precision: str) -> torch.dtype:
    """The dtype screening forwards run in under ``precision``."""
    return _DTYPES[check_precision(precision)]


def screening_model(bridge: Any, precision: str) -> Any:
    """The model a screen runs on: ``bridge`` itself for ``fp32``; for ``bf16`` a bf16 copy of it without split
    q/k/v inputs, made once per model object and reused.

    Only screens may use it: its numbers differ from the fp32 model's by bf16 rounding (a few hundredths of a
    logit on SmolLM2). Read its outputs with ``.float()`` before comparing them with thresholds.
    """
    if effective_precision(bridge, precision) == "fp32" or _is_low_precision(bridge):
        return bridge
    if bridge not in _COPIES:
        _COPIES[bridge] = _bf16_copy(bridge)
    return _COPIES[bridge]


def effective_precision(bridge: Any, precision: str) -> str:
    """What a screen asked for ``precision`` runs in on this model: ``bf16`` only where it was asked for and the
    model has at least :data:`MIN_BF16_PARAMETERS` parameters; ``fp32`` otherwise (what a record should state)."""
    if check_precision(precision) == "fp32":
        return "fp32"
    return "bf16" if sum(p.numel() for p in bridge.parameters()) >= MIN_BF16_PARAMETERS else "fp32"


def _is_low_precision(bridge: Any) -> bool:
    """Whether the model is already in bf16 (or fp16): a copy would gain nothing."""
    return bridge.W_U.dtype in (torch.bfloat16, torch.float16)


def _bf16_copy(bridge: Any) -> Any:
    """A deep copy of ``bridge`` in bf16, its model card kept, split q/k/v inputs off (no screen patches them)."""
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):  # TransformerLens prints the dtype change
        model = copy.deepcopy(bridge, _detached_memo(bridge))
        model.to(torch.bfloat16)
    if getattr(model.cfg, "use_split_qkv_input", False):
        model.set_use_split_qkv_input(False)
    card = getattr(bridge, "advdla_card", None)
    if card is not None:
        object.__setattr__(model, "advdla_card", card)
    return model


def _detached_memo(root: Any) -> dict[int, Any]:
    """A ``copy.deepcopy`` memo mapping every tensor reachable from ``root`` that is not a graph leaf (an activation
    a component kept from a forward with gradients, e.g. the search's GCG step) to a detached clone: deepcopy
    refuses such tensors, and the copy needs their values, not their graph."""
    memo: dict[int, Any] = {}
    stack, seen = [root], set()
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, str | bytes | int | float | type):
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            if obj.grad_fn is not None:
                memo[id(obj)] = obj.detach().clone()
        elif isinstance(obj, dict):
            stack += list(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack += list(obj)
        elif hasattr(obj, "__dict__"):
            stack += list(vars(obj).values())
    return memo
