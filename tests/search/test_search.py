"""The adversarial search on the planted-erasure model, whose answer is known: L0H1 writes, L1H2 erases it."""

from __future__ import annotations

import dataclasses
import json
import random

import optuna
import pandas as pd
import pytest
import torch

from advdla import attribution, patching
from advdla.components import parse_component
from advdla.corpus import TokenWindows, load_corpus
from advdla.criteria import Thresholds, is_adversarial, mechanism
from advdla.errors import AdvdlaError
from advdla.models.planted import PLANTED
from advdla.search import (
    OBJECTIVES,
    SAMPLERS,
    SearchConfig,
    check_objective,
    is_hit,
    resolve_target,
    run_search,
    scalar_objective,
    verified_examples,
    verify,
)
from advdla.search.evaluate import Evaluator, Scores, rank_pool
from advdla.search.local import mutations, unedited
from advdla.search.space import WINDOWS_PER_BASE, _prescreen_scores, build_prompt, build_space, suggest
from advdla.search.verified import verify_resamples
from advdla.search.yields import summarise, wilson

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def planted():
    from advdla.models import load_model

    return load_model("planted-erasure")


@pytest.fixture(scope="module")
def windows(planted):
    return TokenWindows(load_corpus(), planted.tokenizer)


@pytest.mark.parametrize(
    "model, target",
    [("planted", PLANTED.writer), ("planted", PLANTED.honest), ("tiny_gqa", "L0H4"), ("tiny_gqa", "MLP0")],
)
def test_evaluator_matches_dla_and_total_effects(model, target, request):
    bridge = request.getfixturevalue(model)
    win = TokenWindows(load_corpus(), bridge.tokenizer)
    tokens, docs = win.sample(12, 5, seed=3)
    res = win.sample(12, 3, seed=4, exclude=set(docs))[0]
    comp = parse_component(target, bridge.cfg)
    s = Evaluator(bridge, comp, res)(tokens)
    pool = rank_pool(bridge.cfg)
    ref = attribution.dla(bridge, tokens, components=pool)
    eff = patching.total_effects(bridge, tokens, res, [comp], t1=ref.t1, t2=ref.t2)
    direct = patching.direct_effects(bridge, tokens, res, [comp], t1=ref.t1, t2=ref.t2)
    assert torch.equal(s.t1, ref.t1) and torch.equal(s.t2, ref.t2)
    torch.testing.assert_close(s.ld, ref.ld, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(s.dla, ref.values[:, ref.index(comp)], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(s.te, eff.per_resample[:, :, 0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(s.de, direct.per_resample[:, :, 0], atol=1e-4, rtol=1e-4)
    # the one top-k rule: rank by |DLA| among every head and MLP
    assert torch.equal(s.rank, attribution.magnitude_rank(ref.values, ref.index(comp)))


def test_planted_writer_scores_as_the_construction_says(planted, windows):
    """DLA(writer) ~ 1.5 LD, rank 1 or 2 by |DLA| (the eraser's DLA is about minus the writer's), TE ~ 0: adversarial;
    the honest head is not (its TE is most of its DLA)."""
    tokens, docs = windows.sample(16, 6, seed=0)
    res = windows.sample(16, 4, seed=1, exclude=set(docs))[0]
    writer = Evaluator(planted, parse_component(PLANTED.writer, planted.cfg), res)(tokens)
    honest = Evaluator(planted, parse_component(PLANTED.honest, planted.cfg), res)(tokens)
    assert (writer.dla_share > 1.3).all() and (writer.rank <= 2).all() and (writer.te_share < 0.02).all()
    thr = Thresholds(margin=0.5)
    assert is_adversarial(writer, thr).all()
    assert not is_adversarial(honest, thr).any()
    assert (scalar_objective(writer, thr, "dla") > scalar_objective(honest, thr, "dla")).all()
    # DE = DLA minus what the writer writes on the resamples' last tokens: where the prompt's last token has the
    # feature sign the resamples' mostly have, DE is small; where it has the other sign, DE carries the DLA
    hits = is_hit(writer, thr, "compensation")
    assert hits.any() and not hits.all()
    for i in range(len(hits)):
        m = mechanism(writer.dla[i], writer.de_mean[i], writer.te_mean[i], writer.ld[i], thr, rank=writer.rank[i])
        assert (m == "compensation") == bool(hits[i]) and m != "none"
        assert (m == "baseline") == bool(is_hit(writer, thr, "baseline")[i])


def _scores(**kw) -> Scores:
    base = dict(
        tokens=torch.zeros(1, 4, dtype=torch.long),
        t1=torch.tensor([1]),
        t2=torch.tensor([2]),
        ld=torch.tensor([2.0]),
        dla=torch.tensor([1.0]),
        rank=torch.tensor([1]),
        te=torch.tensor([[0.1, 0.1]]),
        naturalness=torch.tensor([-3.0]),
        de=torch.tensor([[0.9, 0.9]]),
    )
    return Scores(**{**base, **kw})


@pytest.mark.parametrize(
    "change, adversarial",
    [
        ({}, True),
        ({"rank": torch.tensor([4])}, False),
        ({"ld": torch.tensor([0.9])}, False),
        ({"dla": torch.tensor([0.5])}, False),
        ({"te": torch.tensor([[0.3, 0.3]])}, False),
        ({"te": torch.tensor([[-0.1, -0.1]])}, True),
    ],
)
def test_thresholds_each_condition_can_fail(change, adversarial):
    assert bool(is_adversarial(_scores(**change), Thresholds())[0]) is adversarial


@pytest.mark.parametrize("objective", list(OBJECTIVES))  # every registered objective: a conformance test
def test_scalar_objective_is_positive_exactly_on_hits_and_ranks_near_misses(objective):
    torch.manual_seed(0)
    n = 4000
    s = Scores(tokens=torch.zeros(n, 4, dtype=torch.long), t1=torch.zeros(n, dtype=torch.long),
               t2=torch.ones(n, dtype=torch.long), ld=torch.rand(n) * 3, dla=torch.rand(n) * 3 - 1,
               rank=torch.randint(1, 8, (n,)), te=torch.randn(n, 2) * 0.3, naturalness=torch.zeros(n),
               de=torch.rand(n, 1).expand(n, 2) * 2 - 0.5)
    thr = Thresholds()
    value, hit = scalar_objective(s, thr, objective), is_hit(s, thr, objective)
    assert hit.any() and not hit.all()
    assert torch.equal(value > 0, hit) or ((value > 0) != hit).sum() <= 2  # ties exactly at a threshold aside
    # farther from a hit is worse: a TE share of 0.25 loses to 0.15, rank 60 to rank 6
    one = _scores(de=torch.tensor([[0.9, 0.9]]), te=torch.tensor([[0.5, 0.5]]))
    two = _scores(de=torch.tensor([[0.9, 0.9]]), te=torch.tensor([[0.3, 0.3]]))
    assert float(scalar_objective(one, thr, objective)) < float(scalar_objective(two, thr, objective)) < 0
    far, near = _scores(rank=torch.tensor([60])), _scores(rank=torch.tensor([6]))
    assert float(scalar_objective(far, thr, objective)) < float(scalar_objective(near, thr, objective)) < 0


@pytest.fixture(scope="module")
def space(planted, windows):
    return build_space(
        planted,
        windows,
        parse_component(PLANTED.writer, planted.cfg),
        seq_len=16,
        seed=0,
        n_base=8,
        n_span=4,
        pool_size=24,
        n_slots=3,
    )


def test_every_candidate_has_the_fixed_length_and_uses_the_pool(space):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(200):
        trial = study.ask()
        params = suggest(trial, space)
        seq = build_prompt(params, space)
        assert seq.shape == (16,)
        for i in range(space.n_slots):
            if params[f"slot{i}_tok"] >= 0:
                assert params[f"slot{i}_tok"] in space.pool
        study.tell(trial, 0.0)
    assert len(space.pool) == 24 and len(set(space.pool)) == 24
    assert set(space.pool_sources) == {"gradient", "ov_copy", "eraser_attention"}


def _fixed(space, **over):
    p = {"context": 0, "insert": "none", "ins_span": 0, "ins_len": 3, "ins_at": 5, "repeat_len": 0, "repeat_from": 0,
         "n_swaps": 0, "swap0_a": 0, "swap0_b": 1, "swap1_a": 2, "swap1_b": 3}
    p.update({f"gcg{i}_pos": 0 for i in range(space.n_gcg)} | {f"gcg{i}_rank": -1 for i in range(space.n_gcg)})
    p.update({f"slot{i}_pos": i for i in range(space.n_slots)})
    p.update({f"slot{i}_tok": -1 for i in range(space.n_slots)})
    return {**p, **over}


def test_manipulations_do_what_they_say(space):
    space = dataclasses.replace(space, contexts=[(0, 32), (0, 20)])
    base = space.bases[0]
    assert torch.equal(build_prompt(_fixed(space), space), base[16:32])
    assert torch.equal(build_prompt(_fixed(space, context=1), space), base[4:20])  # truncation picks the end
    span = space.spans[0][:3]
    assert torch.equal(build_prompt(_fixed(space, insert="prefix"), space), torch.cat([span, base[19:32]]))
    assert torch.equal(
        build_prompt(_fixed(space, insert="infix", ins_at=5), space), torch.cat([base[19:21], span, base[21:32]])
    )
    rep = build_prompt(_fixed(space, repeat_len=4, repeat_from=2), space)
    assert torch.equal(rep[-4:], base[18:22]) and torch.equal(rep[:-4], base[20:32])
    swapped = build_prompt(_fixed(space, n_swaps=1), space)
    assert swapped[0] == base[17] and swapped[1] == base[16]
    slotted = build_prompt(_fixed(space, slot0_tok=space.pool[0], slot1_tok=space.pool[1]), space)
    assert slotted[-1] == space.pool[0] and slotted[-2] == space.pool[1] and torch.equal(slotted[:-2], base[16:30])


def test_gcg_swaps_are_gradient_ranked_per_context_and_position(planted, windows):
    writer = parse_component(PLANTED.writer, planted.cfg)
    space = build_space(planted, windows, writer, seq_len=16, seed=0, n_base=8, n_span=4, pool_size=24, n_slots=1,
                        n_context=6, n_gcg=2, gcg_k=4)
    assert space.gcg.shape == (6, 16, 4) and space.describe()["n_gcg"] == 2
    prompts = torch.stack([space.context_prompt(i) for i in range(6)])
    assert not (space.gcg == prompts[..., None]).any()  # never the token already there
    # rank 0 at the last position is the swap that raises the writer's DLA most (to first order): it does raise it
    p = {**_fixed(space), "slot0_tok": -1, "gcg0_pos": 0, "gcg0_rank": 0, "gcg1_pos": 3, "gcg1_rank": -1}
    swapped = torch.stack([build_prompt({**p, "context": i}, space) for i in range(6)])
    assert torch.equal(swapped[:, :-1], prompts[:, :-1]) and torch.equal(swapped[:, -1], space.gcg[:, -1, 0])
    before = attribution.dla(planted, prompts, components=[writer]).values[:, 0]
    after = attribution.dla(planted, swapped, components=[writer], t1=None).values[:, 0]
    assert (after > before - 1e-4).float().mean() >= 0.8


def test_search_finds_planted_writer_examples_and_each_reverifies(planted, tmp_path):
    cfg = SearchConfig(
        target=PLANTED.writer,
        trials=24,
        batch=8,
        resamples=3,
        seq_len=16,
        n_base=8,
        pool_size=24,
        max_verify=4,
        thresholds=Thresholds(margin=0.5),
        precision="fp32",  # the counts below are the fp32 screen's (a bf16 one flips a near-threshold candidate)
    )
    steps = []
    result = run_search(planted, cfg, out_dir=tmp_path, progress=steps.append)
    assert steps[0].task == "search" and steps[-1].done == steps[-1].total == 24 and len(steps) == 4  # 3 batches of 8
    frame = pd.read_parquet(tmp_path / "examples.parquet")
    assert len(frame) == 4 and frame["verified"].all() and (frame["target"] == PLANTED.writer).all()
    assert verified_examples(frame).equals(frame)
    assert len(set(map(tuple, frame["tokens"]))) == len(frame)
    # the verification's fresh resamples, re-derived: every reported example passes again on the slow path
    windows = TokenWindows(load_corpus(), planted.tokenizer)
    space = build_space(
        planted, windows, parse_component(PLANTED.writer, planted.cfg), seq_len=16, seed=0, n_base=8, pool_size=24
    )
    res = verify_resamples(windows, space, cfg)
    for row in frame.itertuples():
        v = verify(planted, parse_component(PLANTED.writer, planted.cfg), torch.tensor(list(row.tokens)), res)
        assert v["rank"] <= 2 and v["ld"] > 0.5 and v["dla"] / v["ld"] >= 0.3 and abs(v["te_mean"]) / v["ld"] <= 0.1
        assert v["te_mean"] == pytest.approx(row.te_mean, abs=1e-5) and v["dla"] == pytest.approx(row.dla, abs=1e-5)
    summary = json.loads((tmp_path / "search.json").read_text())
    assert (
        summary["thresholds"] == Thresholds(margin=0.5).as_dict() and summary["counts"]["study_complete_trials"] == 24
    )
    assert 0 < summary["sampler_share"] < 1 and result.summary == summary


def test_honest_head_overfit_to_the_search_resamples_is_rejected_on_fresh_ones(planted, tmp_path):
    """The honest head's TE is small only against resamples whose last-token feature matches the prompt's: the search
    finds such prompts for its 3 fixed resamples, and the re-verification on 8 fresh resamples rejects every one."""
    cfg = SearchConfig(
        target=PLANTED.honest, trials=16, batch=8, resamples=3, seq_len=16, n_base=8, pool_size=16, max_verify=8,
        objective="dla",
    )
    result = run_search(planted, cfg, out_dir=tmp_path / "dla")
    counts = result.summary["counts"]
    assert counts["study_adversarial_fast"] > 0 and counts["rejected_on_verify"] > 0
    assert counts["verified_examples"] == 0 and len(result.examples) == 0
    # nothing reads the honest head, so DE = TE: the compensation objective has no hit to chase, not even a fast one
    result = run_search(planted, dataclasses.replace(cfg, objective="compensation"), out_dir=tmp_path / "comp")
    assert result.summary["counts"]["study_adversarial_fast"] == 0


def test_nsga2_keeps_a_pareto_front(planted, tmp_path):
    cfg = SearchConfig(
        target=PLANTED.writer,
        trials=32,
        batch=16,
        sampler="nsga2",
        resamples=2,
        seq_len=16,
        n_base=8,
        pool_size=16,
        max_verify=6,
        verify_resamples=2,
        thresholds=Thresholds(margin=0.5),
    )
    result = run_search(planted, cfg, out_dir=tmp_path)
    frame = result.examples
    assert len(frame) > 0 and frame["pareto"].any()
    assert all(len(o) == 3 for o in frame["objective_values"]) and (frame["objective"] == "compensation").all()


def test_resume_continues_the_same_study(planted, tmp_path):
    cfg = SearchConfig(
        target=PLANTED.writer, trials=16, batch=8, resamples=2, seq_len=16, n_base=8, pool_size=16, max_verify=1
    )
    run_search(planted, cfg, out_dir=tmp_path)
    first = optuna.load_study(study_name="advdla-search", storage=f"sqlite:///{tmp_path / 'study.db'}").trials
    cfg.trials = 24
    r = run_search(planted, cfg, out_dir=tmp_path)
    after = optuna.load_study(study_name="advdla-search", storage=f"sqlite:///{tmp_path / 'study.db'}").trials
    assert [t.params for t in after[:16]] == [t.params for t in first] and len(after) == 24
    assert sorted(t.number for t in after) == list(range(24)) and r.summary["counts"]["stored_by_this_worker"] == 8


def test_resume_with_other_space_arguments_is_refused(planted, tmp_path):
    cfg = SearchConfig(
        target=PLANTED.writer, trials=8, batch=8, resamples=2, seq_len=16, n_base=8, pool_size=16, max_verify=1
    )
    run_search(planted, cfg, out_dir=tmp_path)
    cfg.seq_len = 20
    with pytest.raises(AdvdlaError, match="seq_len=16 .now 20."):
        run_search(planted, cfg, out_dir=tmp_path)


@pytest.mark.parametrize(
    "target, message",
    [
        ("L0H9", "heads 0..3"),
        ("LOH1", "unknown component 'LOH1'.*Did you mean"),
        ("MLP2", "no downstream component"),
        ("embed", "cannot be searched"),
    ],
)
def test_bad_targets_are_one_line(planted, tmp_path, target, message):
    with pytest.raises(AdvdlaError, match=message) as err:
        run_search(planted, SearchConfig(target=target, trials=8), out_dir=tmp_path / "out")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_auto_target_is_the_planted_writer(planted):
    windows = TokenWindows(load_corpus(), planted.tokenizer)
    assert resolve_target(planted, "auto", windows, seq_len=16) == parse_component(PLANTED.writer, planted.cfg)


def test_verified_examples_keeps_only_verified_rows():
    frame = pd.DataFrame({"text": ["a", "b", "c"], "verified": [True, False, True]})
    assert list(verified_examples(frame)["text"]) == ["a", "c"]
    empty = pd.DataFrame(columns=["text", "verified"])
    assert verified_examples(empty) is empty


def test_is_adversarial_reads_floats_as_well_as_scores():
    thr = Thresholds()
    one = dataclasses.make_dataclass("One", ["rank", "ld", "dla_share", "te_share"])
    assert is_adversarial(one(1, 2.0, 0.5, 0.05), thr) is True
    assert is_adversarial(one(4, 2.0, 0.5, 0.05), thr) is False


def test_bad_budget_and_storage_are_one_line(planted, tmp_path):
    with pytest.raises(AdvdlaError, match="--trials must be at least 1"):
        run_search(planted, SearchConfig(target=PLANTED.writer, trials=0), out_dir=tmp_path)
    with pytest.raises(AdvdlaError, match="cannot open storage"):
        run_search(
            planted,
            SearchConfig(target=PLANTED.writer, trials=8),
            out_dir=tmp_path,
            storage="sqlite:////no/such/dir/x.db",
        )
    with pytest.raises(AdvdlaError, match="unknown sampler 'tep'.*Did you mean 'tpe'"):
        run_search(planted, SearchConfig(target=PLANTED.writer, sampler="tep"), out_dir=tmp_path)


def test_objectives_and_samplers_are_registries_with_one_line_errors():
    assert list(OBJECTIVES) == ["compensation", "dla", "baseline"] and "dla" in OBJECTIVES
    assert list(SAMPLERS) == ["tpe", "nsga2", "random"] and "nsga2" in SAMPLERS and "tep" not in SAMPLERS
    assert check_objective("dla") == "dla"
    with pytest.raises(AdvdlaError, match=r"^unknown objective 'compensatoin': use one of compensation, dla, "
                                          r"baseline\. Did you mean 'compensation'\?$"):
        check_objective("compensatoin")
    # each sampler builds the Optuna sampler it names, and its mode is the objective shape the study is told
    kinds = {"tpe": optuna.samplers.TPESampler, "nsga2": optuna.samplers.NSGAIISampler,
             "random": optuna.samplers.RandomSampler}
    for name, spec in SAMPLERS.items():
        assert isinstance(spec.build(0, 16), kinds[name]) and SearchConfig(sampler=name).mode == spec.mode
    assert SearchConfig(sampler="nsga2").mode == "multi" and SearchConfig().mode == "scalar"


@pytest.mark.parametrize(
    "dla, de, te, ld, rank, expected",
    [
        (2.0, 1.8, 0.1, 4.0, 1, "compensation"),  # DE carries the DLA, later components undo it
        (2.0, 0.2, 0.1, 4.0, 1, "baseline"),  # DE small and DE - TE small: the output hardly depends on the context
        (2.0, 0.8, -0.3, 4.0, 1, "mixed"),  # DE small but a sizeable indirect effect
        (2.0, 1.8, 0.1, 4.0, 4, "none"),  # rank beyond top k
        (2.0, 1.8, 0.1, 0.9, 1, "none"),  # LD within the margin
        (1.0, 1.0, 0.1, 4.0, 1, "none"),  # DLA share below 0.3
        (2.0, 1.8, 0.5, 4.0, 1, "none"),  # TE share above 0.1
        (2.0, -1.8, -0.1, 4.0, None, "compensation"),  # |DE| counts; rank None: checked by the caller
    ],
)
def test_mechanism_rules(dla, de, te, ld, rank, expected):

    assert mechanism(dla, de, te, ld, Thresholds(), rank=rank) == expected
    assert mechanism(torch.tensor(dla), torch.tensor(de), torch.tensor(te), torch.tensor(ld), Thresholds(),
                     rank=rank) == expected


def test_yield_summary_intervals_and_ratios():
    lo, hi = wilson(10, 100)
    assert 5 < lo < 10 < hi < 18 and wilson(0, 50)[0] == 0.0
    rows = [{"objective": "compensation", "arm": arm, "seed": seed, "target": "L0H1", "candidates": 100,
             "fast_hits": k, "verified": k, "distinct_docs": min(k, 3), "seconds": 1.0, "per_100": float(k)}
            for arm, ks in (("tpe", (20, 30, 25)), ("random", (5, 4, 6)), ("natural", (2, 3, 1)))
            for seed, k in enumerate(ks)]
    out = {r["arm"]: r for r in summarise(pd.DataFrame(rows))}
    tpe = out["tpe"]
    assert tpe["per_100"] == pytest.approx(25.0) and tpe["per_seed"] == [20.0, 30.0, 25.0]
    assert tpe["x_random"] == pytest.approx(5.0) and tpe["x_natural"] == pytest.approx(12.5)
    assert tpe["x_random_ci"][0] < 5.0 < tpe["x_random_ci"][1]
    assert out["natural"]["ci_low"] < 2.0 < out["natural"]["ci_high"] and "x_random" not in out["random"]


def test_mutations_stay_near_the_best_hits_and_within_the_space(space):
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(40):
        trial = study.ask()
        params = suggest(trial, space)
        trial.set_user_attr("scores", {"adversarial": i in (3, 7, 9)})
        study.tell(trial, float(i if i != 9 else -1) + 100 * (params["context"] == -1))
    done = study.get_trials(deepcopy=False)
    # parents: the best hit of each context, best first (9 shares 7's context here only by chance: handled)
    parents = list({t.params["context"]: t for t in sorted((done[9], done[3], done[7]), key=lambda t: t.values[0])
                    }.values())[::-1]
    out = mutations(done, 6, random.Random(0))
    assert len(out) == 6
    for i, params in enumerate(out):
        parent = parents[i % len(parents)].params
        changed = [k for k in params if params[k] != parent[k]]
        assert params["context"] == parent["context"] and len(changed) <= 2
        for k in changed:
            dist = done[7].distributions[k]
            assert dist._contains(dist.to_internal_repr(params[k]))
    # no hit: the best trials by value are the parents once the warm-up is over, none before it
    misses = [t for t in done if t.number not in (3, 7, 9)]
    assert mutations(misses[:20], 4, random.Random(0)) == []
    assert {p["context"] for p in mutations(misses, 4, random.Random(0))} <= {t.params["context"] for t in misses}
    assert mutations(misses, 1, random.Random(0))[0]["context"] == max(misses, key=lambda t: t.values[0]).params[
        "context"]
    # a context holding `cap` hits is no parent any more: the best trial of another context is
    best_hit = max((done[3], done[7], done[9]), key=lambda t: t.values[0])
    capped = mutations(done, 3, random.Random(0), cap=1)
    assert best_hit.params["context"] not in {p["context"] for p in capped}


@pytest.mark.parametrize("model, target", [("planted", PLANTED.writer), ("tiny_gqa", "L0H4"), ("tiny_gqa", "MLP0")])
def test_prescreen_scores_rank_every_head_and_mlp_as_the_reference_dla(model, target, request, windows):
    bridge = request.getfixturevalue(model)
    comp = parse_component(target, bridge.cfg)
    tokens = TokenWindows(load_corpus(), bridge.tokenizer).sample(12, 6, seed=3)[0]
    got = _prescreen_scores(bridge, comp, tokens, slice(11, 12), top_k=2, margin=0.3)[:, 0]
    ref = attribution.dla(bridge, tokens, components=rank_pool(bridge.cfg))
    i = rank_pool(bridge.cfg).index(comp)
    share = (ref.values[:, i] / ref.ld.clamp(min=1e-3)).clamp(-3, 3)
    rank = attribution.magnitude_rank(ref.values, i)
    want = share - 3 * (ref.ld <= 0.3) - 3 * (rank > 2)
    assert torch.allclose(got, want, atol=1e-4)
    # every truncation point of a window at once: the last one is the whole window's last position
    rough = _prescreen_scores(bridge, comp, tokens, slice(5, 12), top_k=2, margin=0.3)
    assert rough.shape == (6, 7) and torch.allclose(rough[:, -1], got, atol=1e-4)


def test_space_prescreens_more_windows_of_the_same_documents(space, windows):
    n_base = 8
    assert len(space.bases) == n_base * WINDOWS_PER_BASE and space.describe()["n_base"] == len(space.bases)
    for row, doc in zip(space.bases, space.base_docs[:len(space.bases)]):  # each window lies in its document
        text = windows.ids[doc]
        assert any((text[s:s + len(row)] == row.numpy()).all() for s in range(len(text) - len(row) + 1))
    assert set(space.base_docs[n_base:len(space.bases)]) == set(space.base_docs[:n_base])  # no new documents


def test_unedited_trials_are_the_contexts_best_first_each_once(space):
    plain = unedited(space, [], 3)
    assert [p["context"] for p in plain] == [0, 1, 2]
    for p in plain:
        assert torch.equal(build_prompt(p, space), space.context_prompt(p["context"]))
    study = optuna.create_study(direction="maximize")
    for p in plain:
        study.enqueue_trial(p)
        trial = study.ask()
        assert suggest(trial, space) == p  # every value lies in the space
        study.tell(trial, 0.0)
    assert [p["context"] for p in unedited(space, study.trials, 2)] == [3, 4]
    assert unedited(space, study.trials, 0) == []
