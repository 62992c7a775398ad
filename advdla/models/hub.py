"""Any other model: a local directory or an HF hub name, loaded through transformers.

A local directory is either a saved HF model (``config.json`` with a ``model_type`` and weights, from
``save_pretrained``) or a TransformerLens checkpoint folder (``config.json`` + ``*final.pth``, as
NeelNanda/GELU_4L512W_C4_Code ships), which :mod:`advdla.models.gelu4l` rebuilds as GPT-2. A hub name
(``org/name``) is downloaded, or read from the HF cache when the hub is unreachable.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import torch

from advdla.errors import AdvdlaError
from advdla.models import gelu4l

_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def load_hf(name: str, *, dtype: torch.dtype = torch.float32) -> tuple[Any, Any, str]:
    """``(hf_model, tokenizer, source)`` for a local directory or a hub name."""
    path = Path(name).expanduser()
    if path.exists():
        return _load_local(path.resolve(), dtype)
    if _looks_like_path(name):
        raise AdvdlaError(f"no such model directory: {name}")
    if name == gelu4l.REPO:  # a TL checkpoint repo, not an HF one: same weights as the registry's gelu-4l
        return gelu4l.load_hub()
    return _load_hub(name, dtype)


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.count("/") != 1 or name.endswith("/")


def _load_local(path: Path, dtype: torch.dtype) -> tuple[Any, Any, str]:
    if path.is_dir() and gelu4l.is_tl_checkpoint_dir(path):
        return gelu4l.load_dir(path)
    if not (path.is_dir() and _is_hf_dir(path)):
        raise AdvdlaError(f"{path} is not a model: expected a folder with config.json and weights "
                          f"({' or '.join(_WEIGHTS[::2])}, as save_pretrained writes), or config.json + *final.pth")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as exc:
        raise AdvdlaError(f"cannot load {path} with transformers: {_first_line(exc)}") from None
    return model.eval(), tokenizer, f"local: {path}"


def _is_hf_dir(path: Path) -> bool:
    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(cfg, dict) and "model_type" in cfg and any((path / w).is_file() for w in _WEIGHTS)


def _load_hub(name: str, dtype: torch.dtype) -> tuple[Any, Any, str]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(name)
    except Exception as exc:
        raise AdvdlaError(f"cannot load {name!r} from the HF hub or its cache ({_first_line(exc)}); check the name "
                          "and the network, or give a local directory") from None
    return model.eval(), tokenizer, f"hub: {name}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


class quiet_transformers:
    """Silence transformers' own progress bars and info logs (advdla shows one progress bar of its own)."""

    def __enter__(self) -> None:
        from transformers.utils import logging

        self._verbosity = logging.get_verbosity()
        logging.set_verbosity_error()
        logging.disable_progress_bar()
        try:  # the GGUF reader calls tqdm directly, past transformers' switch
            import transformers.modeling_gguf_pytorch_utils as gguf_utils

            self._gguf, self._tqdm = gguf_utils, gguf_utils.tqdm
            gguf_utils.tqdm = functools.partial(self._tqdm, disable=True)
        except (ImportError, AttributeError):
            self._gguf = None

    def __exit__(self, *exc: Any) -> None:
        from transformers.utils import logging

        logging.set_verbosity(self._verbosity)
        logging.enable_progress_bar()
        if self._gguf is not None:
            self._gguf.tqdm = self._tqdm
