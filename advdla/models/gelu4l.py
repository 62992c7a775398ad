"""``gelu-4l``: the paper's NeelNanda/GELU_4L512W_C4_Code, rebuilt exactly as an HF GPT-2.

Context: the checkpoint is a TransformerLens (HookedTransformer) state dict (``*final.pth``) plus a TL-style
``config.json``; HF cannot load it, and TransformerLens 4's own legacy loader builds a native bridge that has
no per-head results or split q/k/v inputs. But the architecture is GPT-2's (LayerNorm, exact GELU, learned
positions), so we copy the tensors into a ``GPT2LMHeadModel`` and get every hook through the HF bridge.

Where the files come from, first match wins:
1. a directory given as the model (``--model /path``) holding ``config.json`` + ``*final.pth`` (+ tokenizer);
2. ``$ADVDLA_GELU4L_DIR``, then ``$ADVDLA_HOME/models/gelu-4l-src`` (same layout);
3. the HF hub (``NeelNanda/GELU_4L512W_C4_Code``, tokenizer ``NeelNanda/gpt-neox-tokenizer-digits``), or its
   local cache when offline.
Checkpoints load with ``torch.load(weights_only=True)``: nothing in them is executed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from advdla.errors import AdvdlaError
from advdla.models.cache import models_dir

REPO = "NeelNanda/GELU_4L512W_C4_Code"
TOKENIZER_REPO = "NeelNanda/gpt-neox-tokenizer-digits"
SRC_DIR = "gelu-4l-src"
_ACTS = {"gelu": "gelu", "gelu_new": "gelu_new", "relu": "relu"}  # TL act_fn -> HF activation_function
_BUFFERS = ("attn.mask", "attn.IGNORE")  # HookedTransformer buffers saved with the weights, not weights


def local_dir() -> Path | None:
    """The first local source directory that exists (env var, then the advdla cache), or None."""
    env = os.environ.get("ADVDLA_GELU4L_DIR")
    if env:
        if not Path(env).expanduser().is_dir():
            raise AdvdlaError(f"ADVDLA_GELU4L_DIR={env} is not a directory: point it at a folder with config.json "
                              "and *final.pth, or unset it")
        return Path(env).expanduser()
    src = models_dir() / SRC_DIR
    return src if src.is_dir() else None


def is_tl_checkpoint_dir(path: Path) -> bool:
    """A TL-format checkpoint folder: a config.json and a ``*final.pth`` file."""
    return (path / "config.json").is_file() and bool(_final_pth(path))


def load(device: str, dtype: torch.dtype) -> tuple[Any, Any, str]:
    """The registry loader: local directory if there is one, else the hub (or its cache)."""
    src = local_dir()
    if src is not None:
        return load_dir(src)
    return load_hub()


def load_dir(path: Path) -> tuple[Any, Any, str]:
    """``(GPT2LMHeadModel, tokenizer, source)`` from a folder with config.json + *final.pth (+ tokenizer)."""
    if not is_tl_checkpoint_dir(path):
        raise AdvdlaError(f"{path} is not a TransformerLens checkpoint folder: it needs config.json and a *final.pth "
                          "file (NeelNanda/GELU_4L512W_C4_Code layout)")
    cfg = json.loads((path / "config.json").read_text())
    model = convert(_load_state_dict(_final_pth(path)[0]), cfg)
    return model, _tokenizer(path, cfg), f"local: {path}"


def convert(sd: dict[str, torch.Tensor], cfg: dict[str, Any]) -> Any:
    """A TL HookedTransformer state dict of a GPT-2-shaped model -> an HF ``GPT2LMHeadModel`` (exact)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    c = _check_config(cfg)
    hf_cfg = GPT2Config(n_layer=c["n_layers"], n_head=c["n_heads"], n_embd=c["d_model"], n_inner=c["d_mlp"],
                        vocab_size=c["d_vocab"], n_positions=c["n_ctx"], activation_function=_ACTS[c["act_fn"]],
                        layer_norm_epsilon=float(cfg.get("eps", 1e-5)), tie_word_embeddings=False,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None)
    with torch.device("meta"):  # no random init of weights we overwrite anyway (seconds at the real size)
        hf = GPT2LMHeadModel(hf_cfg)
    hf.load_state_dict(_hf_state_dict(sd, c), strict=True, assign=True)
    if any(t.is_meta for t in [*hf.parameters(), *hf.buffers()]):
        raise AdvdlaError("internal: the GPT-2 rebuild left tensors without values")  # a transformers change
    return hf.eval()


def _check_config(cfg: dict[str, Any]) -> dict[str, Any]:
    need = ("n_layers", "d_model", "n_heads", "d_head", "d_mlp", "d_vocab", "n_ctx", "act_fn")
    missing = [k for k in need if k not in cfg]
    if missing:
        raise AdvdlaError(f"config.json lacks {', '.join(missing)}: not a TransformerLens model config")
    norm = cfg.get("normalization_type", cfg.get("normalization", "LN"))
    problems = []
    if norm != "LN":
        problems.append(f"normalization {norm!r} (only 'LN')")
    if cfg["act_fn"] not in _ACTS:
        problems.append(f"act_fn {cfg['act_fn']!r} (only {', '.join(_ACTS)})")
    if cfg["n_heads"] * cfg["d_head"] != cfg["d_model"]:
        problems.append("n_heads * d_head != d_model")
    positions = cfg.get("positional_embedding_type", "standard")
    if cfg.get("attn_only") or cfg.get("shortformer_pos") or positions != "standard":
        problems.append("attention-only or non-standard positions")
    if problems:
        raise AdvdlaError(f"this checkpoint cannot be rebuilt as GPT-2: {'; '.join(problems)}")
    return cfg


def _hf_state_dict(sd: dict[str, torch.Tensor], c: dict[str, Any]) -> dict[str, torch.Tensor]:
    """TL names/shapes -> GPT-2's Conv1D layout ([in, out]); q, k, v concatenated along the output."""
    d = c["d_model"]
    sd = {k: v.float() for k, v in sd.items() if not k.endswith(_BUFFERS)}
    b_U = sd.pop("unembed.b_U", None)
    if b_U is not None and bool(b_U.abs().max() > 0):
        raise AdvdlaError("the checkpoint has a non-zero unembedding bias, which GPT-2's lm_head cannot hold")
    out = {"transformer.wte.weight": sd.pop("embed.W_E"), "transformer.wpe.weight": sd.pop("pos_embed.W_pos"),
           "transformer.ln_f.weight": sd.pop("ln_final.w"), "transformer.ln_f.bias": sd.pop("ln_final.b"),
           "lm_head.weight": sd.pop("unembed.W_U").T.contiguous()}
    for l in range(c["n_layers"]):
        tl, hf = f"blocks.{l}.", f"transformer.h.{l}."
        qkv_w = [sd.pop(tl + f"attn.W_{x}").permute(1, 0, 2).reshape(d, -1) for x in "QKV"]  # [d_model, n_heads*d_head]
        qkv_b = [sd.pop(tl + f"attn.b_{x}").reshape(-1) for x in "QKV"]
        out |= {hf + "ln_1.weight": sd.pop(tl + "ln1.w"), hf + "ln_1.bias": sd.pop(tl + "ln1.b"),
                hf + "attn.c_attn.weight": torch.cat(qkv_w, dim=1), hf + "attn.c_attn.bias": torch.cat(qkv_b),
                hf + "attn.c_proj.weight": sd.pop(tl + "attn.W_O").reshape(-1, d),
                hf + "attn.c_proj.bias": sd.pop(tl + "attn.b_O"),
                hf + "ln_2.weight": sd.pop(tl + "ln2.w"), hf + "ln_2.bias": sd.pop(tl + "ln2.b"),
                hf + "mlp.c_fc.weight": sd.pop(tl + "mlp.W_in"), hf + "mlp.c_fc.bias": sd.pop(tl + "mlp.b_in"),
                hf + "mlp.c_proj.weight": sd.pop(tl + "mlp.W_out"), hf + "mlp.c_proj.bias": sd.pop(tl + "mlp.b_out")}
    if sd:
        raise AdvdlaError(f"unexpected tensors in the checkpoint: {', '.join(sorted(sd)[:5])}")
    return {k: v.contiguous() for k, v in out.items()}


def _final_pth(path: Path) -> list[Path]:
    """``*final.pth`` at the top of ``path``, else anywhere below it (hub repos may keep it in a subfolder)."""
    return sorted(path.glob("*final.pth")) or sorted(path.glob("**/*final.pth"))


def _load_state_dict(pth: Path) -> dict[str, torch.Tensor]:
    try:
        sd = torch.load(pth, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle with code in it, or a corrupt file: one line either way
        raise AdvdlaError(f"cannot load {pth} as a plain tensor checkpoint ({type(exc).__name__}); "
                          "advdla only loads weights_only checkpoints") from None
    if not isinstance(sd, dict):
        raise AdvdlaError(f"{pth} does not hold a state dict")
    return sd


def _tokenizer(path: Path, cfg: dict[str, Any]) -> Any:
    """The tokenizer saved beside the checkpoint, else the one its config names (hub or hub cache)."""
    from transformers import AutoTokenizer

    if (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    name = cfg.get("tokenizer_name") or TOKENIZER_REPO
    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as exc:
        raise AdvdlaError(f"no tokenizer in {path} and the tokenizer {name!r} could not be loaded from the hub "
                          f"({type(exc).__name__}); save it into {path} with tokenizer.save_pretrained()") from None


def load_hub() -> tuple[Any, Any, str]:
    """Download (or find in the HF cache when offline) config.json + *final.pth and the tokenizer."""
    from huggingface_hub import snapshot_download

    try:
        snap = Path(snapshot_download(REPO, allow_patterns=["config.json", "*final.pth"]))
        if not is_tl_checkpoint_dir(snap):
            raise FileNotFoundError("incomplete snapshot")
        tokenizer_dir = Path(snapshot_download(TOKENIZER_REPO))
    except Exception as exc:
        raise AdvdlaError(
            f"gelu-4l is not available: the hub ({REPO}) cannot be reached and it is not cached "
            f"({type(exc).__name__}); put config.json, *final.pth and the tokenizer in {models_dir() / SRC_DIR} "
            "or set ADVDLA_GELU4L_DIR") from None
    from transformers import AutoTokenizer

    cfg = json.loads((snap / "config.json").read_text())
    model = convert(_load_state_dict(_final_pth(snap)[0]), cfg)
    return model, AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True), f"hub: {REPO}"
