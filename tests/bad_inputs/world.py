"""The world the bad-input cases run in: every place a case points at, built once per session in one folder.

Context: a case names places as ``{W}/...`` (``cases.py``); ``build_world(w)`` makes them under ``w``: small local
models (a GPT-2 with a context of 8, one with a 4-token vocabulary, broken copies), the suite configs, a suite built
on planted-erasure with a stub search and tampered copies of it, result records scored on that suite, a
leaderboard, unreadable and read-only places, and one empty working folder per case. Nothing is fetched: the cases
run with ADVDLA_HOME at ``{W}/home`` and the Hugging Face libraries offline.

Intuition: each bad place is a good one with one thing broken (a manifest cut short, one byte of a parquet file
flipped, a record without its metrics), so a refusal can only be about that one thing. ``LOCKED`` lists the places
whose file modes are taken away; ``unlock`` gives them back so that the folder can be removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from pathlib import Path

import torch
from cases import CASES, CONFIGS, CONTROLS, GOOD_CONFIG
from tokenizers import Tokenizer, pre_tokenizers
from tokenizers.models import WordLevel
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from advdla.cli import main
from advdla.models import load_model
from advdla.models.tiny import byte_tokenizer
from advdla.suites import build_suite, load_config
from advdla.suites.build import Candidate

__all__ = ["LOCKED", "build_world", "unlock"]

# the permission cases: effective for a user other than root, or for root without its file-mode override
LOCKED = {"locked/suite": 0, "locked-config.yaml": 0, "locked-record.json": 0, "readonly": 0o555,
          "readonly-board": 0o555}


def build_world(w: Path) -> None:
    """Everything the cases point at: small local models, a freshly built suite and tampered copies of it, suite
    configs, result records scored on that suite, a leaderboard folder, and unreadable / read-only places."""
    _plain_places(w)
    _models(w / "models")
    _configs(w / "configs")
    good = _suites(w / "suites", w / "configs" / "good.yaml")
    _records(w, good)
    old_run = w / "old-run" / "suites" / "planted-erasure-run"
    old_run.mkdir(parents=True)
    (old_run / "manifest.json").write_text("{}")
    _locked_places(w, good)
    (w / "cwd").mkdir()
    for case in CASES + CONTROLS:
        (w / "cwd" / case.id).mkdir()


def unlock(w: Path) -> None:
    """Give the ``LOCKED`` places their modes back (so that the world can be removed)."""
    for path in LOCKED:
        with contextlib.suppress(OSError):
            (w / path).chmod(0o755)


def _plain_places(w: Path) -> None:
    """ADVDLA_HOME's model cache, an empty folder and a plain file."""
    (w / "home" / "models").mkdir(parents=True)
    cached = Path.home() / ".cache" / "advdla" / "models" / "smollm2-135m"
    if cached.is_dir():  # the default model, should a case reach it: never fetched here
        (w / "home" / "models" / "smollm2-135m").symlink_to(cached)
    (w / "empty").mkdir()
    (w / "afile.txt").write_text("a plain file\n")


def _models(models: Path) -> None:
    """A GPT-2 with a context of 8, one with a 4-token vocabulary, an empty folder, a broken config, broken weights."""
    torch.manual_seed(0)
    _save_model(models / "short-ctx", GPT2LMHeadModel(GPT2Config(
        n_layer=2, n_head=2, n_embd=32, n_positions=8, vocab_size=257, bos_token_id=256, eos_token_id=256)).eval(),
        byte_tokenizer())
    _save_model(models / "tiny-vocab", GPT2LMHeadModel(GPT2Config(
        n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=4, bos_token_id=3, eos_token_id=3)).eval(),
        _word_tokenizer())
    (models / "empty").mkdir()
    shutil.copytree(models / "short-ctx", models / "bad-config")
    (models / "bad-config" / "config.json").write_text('{"model_type": "gpt2", "n_layer": ')
    shutil.copytree(models / "short-ctx", models / "bad-weights")
    (models / "bad-weights" / "model.safetensors").write_bytes(b"\x00" * 64)


def _save_model(path: Path, hf_model, tokenizer) -> None:
    hf_model.save_pretrained(path)
    tokenizer.save_pretrained(path)


def _word_tokenizer():
    """A 4-token word-level tokenizer: <unk>, 'the', 'a', <eos>."""
    tok = Tokenizer(WordLevel(vocab={"<unk>": 0, "the": 1, "a": 2, "<eos>": 3}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>", bos_token="<eos>")


def _configs(configs: Path) -> None:
    configs.mkdir()
    for name, text in CONFIGS.items():
        (configs / name).write_text(text)


def _suites(suites: Path, config: Path) -> Path:
    """The good suite (built from ``config``) and its tampered copies beside it; the good suite's folder."""
    good = suites / "bad-inputs"
    build_suite(load_config(config), good, find=_stub_finder, bridge=load_model("planted-erasure"))
    shutil.copytree(good, suites / "bad-manifest")
    (suites / "bad-manifest" / "manifest.json").write_text('{"name": "bad-inputs", ')
    data = bytearray((good / "data" / "dev.parquet").read_bytes())
    shutil.copytree(good, suites / "bad-sha")
    data[len(data) // 2] ^= 0xFF
    (suites / "bad-sha" / "data" / "dev.parquet").write_bytes(bytes(data))
    shutil.copytree(good, suites / "truncated")
    (suites / "truncated" / "data" / "dev.parquet").write_bytes(bytes(data[: len(data) // 3]))
    _set_file_sha(suites / "truncated", "data/dev.parquet")
    shutil.copytree(good, suites / "no-data")
    (suites / "no-data" / "data" / "dev.parquet").unlink()
    manifest = json.loads((good / "manifest.json").read_text())
    shutil.copytree(good, suites / "other-model")
    (suites / "other-model" / "manifest.json").write_text(json.dumps({**manifest, "model": "planted-erasur"}))
    shutil.copytree(good, suites / "manifest-fields")
    for key in ("fingerprints", "fingerprint", "model"):
        manifest.pop(key, None)
    (suites / "manifest-fields" / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return good


def _stub_finder(bridge, target, *, cfg, seed, n, windows, exclude_docs=frozenset(), **_):
    """Stand-in for the search while building the world's suite: n corpus windows, each from its own document."""
    tokens, docs = windows.sample(cfg.seq_len, n, seed=seed + 99, exclude=set(exclude_docs))
    return [Candidate(tuple(t.tolist()), target.name, d) for t, d in zip(tokens, docs)], {"engine": "stub"}


def _set_file_sha(suite: Path, rel: str) -> None:
    """Record ``rel``'s current sha256 in the manifest's file list (a tampered file that passes the hash check)."""
    manifest = json.loads((suite / "manifest.json").read_text())
    manifest["files"][rel] = hashlib.sha256((suite / rel).read_bytes()).hexdigest()
    (suite / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _records(w: Path, good: Path) -> None:
    """A record scored on the good suite, a leaderboard holding it (and a copy to make read-only), broken records."""
    records = w / "records"
    records.mkdir()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["score", "--suite", str(good), "--methods", "dla,random", "--out", str(records / "good.json")
                     ]) == 0
        assert main(["leaderboard", "add", str(records / "good.json"), "--dir", str(w / "board")]) == 0
    record = json.loads((records / "good.json").read_text())[0]
    (records / "not-json.json").write_text('[{"method": ')
    (records / "no-metrics.json").write_text(json.dumps({k: v for k, v in record.items() if k != "metrics"}))
    (records / "unknown-suite.json").write_text(json.dumps({**record, "suite": {**record["suite"],
                                                                               "name": "no-such-suite"}}))
    (records / "empty-list.json").write_text("[]")
    metrics = [{**m, "value": "high"} for m in record["metrics"]]
    (records / "bad-value.json").write_text(json.dumps({**record, "metrics": metrics}))
    (records / "stale.json").write_text(json.dumps({**record, "suite": {**record["suite"], "fingerprint": "0" * 64}}))
    shutil.copytree(w / "board", w / "readonly-board")


def _locked_places(w: Path, good: Path) -> None:
    """An unreadable suite, config and record, a read-only folder (and the read-only leaderboard): ``LOCKED``."""
    (w / "locked").mkdir()
    shutil.copytree(good, w / "locked" / "suite")
    (w / "locked-config.yaml").write_text(GOOD_CONFIG)
    (w / "locked-record.json").write_text((w / "records" / "good.json").read_text())
    (w / "readonly").mkdir()
    for path, mode in LOCKED.items():
        (w / path).chmod(mode)
