"""``--limit N``: a smoke run scores N examples, adversarial and natural in turn, and a run without it keys its
folder exactly as runs did before the option existed (their folders still resume)."""

from __future__ import annotations

from types import SimpleNamespace

from advdla.commands.score import smoke_subset
from advdla.pipeline import plan_run
from advdla.pipeline.resume import plan_key


def test_smoke_subset_alternates_kinds_and_keeps_order():
    examples = [SimpleNamespace(kind=k, i=i) for i, k in enumerate("aaaaannn")]
    examples = [SimpleNamespace(kind="adversarial" if e.kind == "a" else "natural", i=e.i) for e in examples]
    assert [e.i for e in smoke_subset(examples, 4)] == [0, 5, 1, 6]
    assert [e.i for e in smoke_subset(examples, 8)] == [0, 5, 1, 6, 2, 7, 3, 4]  # all of them, none twice
    assert [e.i for e in smoke_subset(examples[:5], 2)] == [0, 1]  # one kind only


def test_limit_is_keyed_only_when_given(tmp_path):
    plain = plan_run("planted-erasure", out=str(tmp_path), shipped="none")
    limited = plan_run("planted-erasure", out=str(tmp_path), shipped="none", limit=3)
    assert limited.limit == 3 and plain.limit is None
    assert "limit" not in plan_key(plain) and plan_key(limited)["limit"] == 3
    assert {k: v for k, v in plan_key(limited).items() if k != "limit"} == plan_key(plain)
