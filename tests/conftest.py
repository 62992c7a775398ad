"""Shared fixtures. Models load once per session; ``advdla_home`` points ADVDLA_HOME at an empty folder."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny():
    """The seeded random 2-layer GPT-2 (every hook), loaded once per session. Do not modify it."""
    from advdla.models import load_model

    return load_model("tiny-gpt2")


@pytest.fixture(scope="session")
def tiny_gqa():
    """The seeded random 2-layer Llama with grouped-query attention, loaded once per session."""
    from advdla.models import load_model

    return load_model("tiny-llama-gqa")


@pytest.fixture
def advdla_home(tmp_path, monkeypatch):
    """An empty ADVDLA_HOME for one test (the cache folder it would write to)."""
    home = tmp_path / "advdla-home"
    monkeypatch.setenv("ADVDLA_HOME", str(home))
    return home
