"""Generated models ship as weight files, so that a registry name means the same bytes on every machine.

Context: the planted and tiny models are built from code: seeded random numbers, a QR factorisation, float32
matmuls. The last bits of those operations depend on which CPU kernels the process dispatches. On one AMD EPYC
machine, ``ATEN_CPU_CAPABILITY=default`` (torch's scalar kernels, which also change ``randn``) gave every one of
them other weights, and ``MKL_CBWR=COMPATIBLE`` (MKL's QR and matmul code path) gave the planted ones other
weights, by at most 2.4e-7. The weights fingerprint hashes exact bytes, so a suite built on one CPU failed to
verify on another, although its truth was the same to 1e-6.

So each registered generated model ships its weights here, in ``advdla/models/weights/NAME.safetensors``,
pinned by sha256 (:data:`PINS`): loading builds the model's architecture (random init, as before) and replaces
every tensor with the file's. The builders stay the documented way the files were made
(:func:`advdla.models.planted.build_planted`, :func:`advdla.models.tiny.tiny_gpt2_hf`, ...); a test runs each in
fresh processes under those kernel switches, with 1 and 2 threads, and checks it reproduces its file within
:data:`REBUILD_TOLERANCE`. ``advdla models rebuild NAME`` does the same on any machine.

Models built from code with other settings (:func:`advdla.models.load_planted` with a config of its own, the tiny
models at other seeds) are not shipped: their weights can differ in the last bits between CPUs.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load_model, save_model

from advdla.errors import AdvdlaError
from advdla.models.planted import (
    PLANTED_BASELINE_CONFIG,
    PLANTED_WORDS_CONFIG,
    PlantedConfig,
    build_planted,
    planted_skeleton,
)
from advdla.models.tiny import byte_tokenizer, tiny_gemma3_hf, tiny_gpt2_hf, tiny_llama_gqa_hf

__all__ = ["PINS", "FINGERPRINTS", "REBUILD_TOLERANCE", "WEIGHTS_DIR", "GENERATED", "Generated", "weights_file",
           "load_generated", "load_shipped", "write_weights", "max_difference"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
REBUILD_TOLERANCE = 1e-6  # max |builder - shipped| over every weight (measured: at most 2.4e-7 across kernels)

# The weights fingerprint (advdla.models.bridge.weights_fingerprint, over the loaded state dict) that each name loads:
# known without loading, so that `advdla run` can tell while it plans whether a shipped suite fits the model.
FINGERPRINTS: dict[str, str] = {
    "planted-erasure": "9d84e1a01233eeef31a172ec2ba05790a4c9384780d1a283061776a4c06cc1b1",
    "planted-baseline": "23e848449ce628c78b03e403b68b6a973afac0ea7ede6703aabcb65bfaa3387e",
    "planted-words": "b0ab60457a0ef04bdaf0e79a8d114063406a4a2502b35f7d57d4a55de1c67294",
    "tiny-gpt2": "1d0569a5fa40fc00f78587ac3666edb4f997ca3b8fc436c479cc58ea3f57dd64",
    "tiny-llama-gqa": "1d2991cfc805d6c115c6f0cc8e3fa0c068fb9804014f529071e9d60b46658de1",
    "tiny-gemma3": "047292b40953ebdb3b2fa4d96c155464106e283ecae71787fe2c65046a432bee",
}
# sha256 of each shipped file (the file's bytes: checked before it is loaded)
PINS: dict[str, str] = {
    "planted-erasure": "6462efa52976f704d00bdda756a30a8210aea520a65d62105b224beeca8409a9",
    "planted-baseline": "0fa32a95c2a4ce4fdc65fd9724334ba1bd92cb0877dbf09ffcb0eb0b9eb27223",
    "planted-words": "9b2ffccfec7775042e6092efa37881005170139be86945c27c6d3eab1aa0b9bc",
    "tiny-gpt2": "1811ea5d4fb874630eb87e5acb81a5a21e0e87a2f38fba4306454dce2ed31e2f",
    "tiny-llama-gqa": "3ec294c23f1e7a925437cdb8c62e77a6ffd89fb81db6d5e91e724c9a62a54940",
    "tiny-gemma3": "e88d45c4913f68f51a3f3f803a453833f1e4eb4284a3db86cf5c347216a21ab4",
}


@dataclass(frozen=True)
class Generated:
    """A registered model built from code: ``skeleton()`` -> (HF model of its architecture, tokenizer), into which
    the shipped weights load; ``build()`` -> the HF model with the weights made by its builder."""

    skeleton: Callable[[], tuple[Any, Any]]
    build: Callable[[], Any]


def _planted(config: PlantedConfig) -> Generated:
    return Generated(skeleton=lambda: planted_skeleton(config)[:2], build=lambda: build_planted(config)[0])


def _tiny(make: Callable[[], Any]) -> Generated:
    # the tiny models are their architecture's seeded random init: the skeleton is the build, weights replaced
    return Generated(skeleton=lambda: (make(), byte_tokenizer()), build=make)


GENERATED: dict[str, Generated] = {
    "planted-erasure": _planted(PlantedConfig(seed=0)),
    "planted-baseline": _planted(PLANTED_BASELINE_CONFIG),
    "planted-words": _planted(PLANTED_WORDS_CONFIG),
    "tiny-gpt2": _tiny(lambda: tiny_gpt2_hf(seed=0)),
    "tiny-llama-gqa": _tiny(lambda: tiny_llama_gqa_hf(seed=0)),
    "tiny-gemma3": _tiny(lambda: tiny_gemma3_hf(seed=0)),
}


def load_generated(name: str) -> tuple[Any, Any]:
    """The registered generated model ``name`` with its shipped weights, and its tokenizer."""
    model, tokenizer = GENERATED[name].skeleton()
    return load_shipped(name, model), tokenizer


def weights_file(name: str) -> Path:
    """Where ``name``'s shipped weights live."""
    return WEIGHTS_DIR / f"{name}.safetensors"


def load_shipped(name: str, skeleton: Any) -> Any:
    """``skeleton`` (an HF model of ``name``'s architecture) with every tensor replaced by the shipped file's.

    The file's sha256 is checked against :data:`PINS` first; every parameter and buffer of the skeleton must be in
    the file (tied weights once), and nothing else.
    """
    path = weights_file(name)
    if not path.is_file():
        raise AdvdlaError(f"the shipped weights of {name!r} are missing ({path}): reinstall advdla, or rebuild them "
                          f"with `advdla models rebuild {name} --out {path}`")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != PINS[name]:
        raise AdvdlaError(f"the shipped weights of {name!r} ({path}) have sha256 {digest[:12]}, pinned "
                          f"{PINS[name][:12]}: the file was changed; reinstall advdla")
    load_model(skeleton, path, strict=True, device="cpu")
    return skeleton.eval()


def write_weights(model: Any, path: str | os.PathLike) -> str:
    """Save ``model``'s weights as safetensors at ``path`` (atomically); returns the file's sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_model(model, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a package file is readable by all
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def max_difference(a: Any, b: Any) -> float:
    """max |a - b| over every tensor of two models' state dicts (which must hold the same names and shapes)."""
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys():
        raise AdvdlaError(f"the two models hold different tensors: {sorted(sa.keys() ^ sb.keys())[:4]}")
    return max((sa[k].double() - sb[k].double()).abs().max().item() for k in sa if sa[k].numel())
