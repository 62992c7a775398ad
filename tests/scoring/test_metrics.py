"""Scoring v3's metrics: each against its slow loop reference, perfect estimates at the best value, random and constant
estimates at chance, hand-made numbers, the context (late panel) and the aggregated frame against TE and DE."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from advdla.errors import AdvdlaError
from advdla.scoring import (
    AGAINST,
    FRAME_COLUMNS,
    METRICS,
    Context,
    bootstrap_ci,
    example_chance,
    example_context,
    example_metrics,
    primary_metric,
    register_metric,
    score_estimates,
)
from advdla.scoring.metrics import per_example_frame
from advdla.suites import Example, Truth

ORDER = ["mcc", "precision", "recall", "auprc", "target_error", "false_alarm", "miss", "rank_full", "rank_late",
         "rank_flagged", "topk_recall", "spearman_w", "auroc", "sign_agreement", "mae_norm"]


def _same(a: float, b: float, tol: float = 1e-12) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


def _truth(rng, n, ld):
    """A panel's truth: about a third of the components carry an effect of the order of LD, the rest are small."""
    return rng.normal(0, abs(ld), n) * (rng.random(n) < 0.3) + rng.normal(0, 0.02 * abs(ld), n)


def _random_case(rng):
    """(est, truth, ctx) of random size, LD, target, late panel and parameters; a third integer-valued (ties, values
    exactly at the threshold tau |LD|)."""
    n = int(rng.integers(5, 61))
    if rng.random() < 1 / 3:
        ld = float(rng.choice([-10.0, 10.0, 20.0]))
        truth = rng.integers(-3, 4, n).astype(float)
        est = rng.integers(-3, 4, n).astype(float) if rng.random() < 0.5 else truth + rng.integers(-1, 2, n)
    else:
        ld = float(rng.choice([-1, 1]) * rng.uniform(0.2, 5))
        truth = _truth(rng, n, ld)
        est = (truth + rng.normal(0, rng.uniform(0.01, 2) * abs(ld), n)) if rng.random() < 0.5 \
            else np.round(rng.normal(0, abs(ld), n), 1)
    late = rng.random(n) < rng.uniform(0.05, 1)
    ctx = Context(target=int(rng.integers(n)), ld=ld, late=late, k=int(rng.integers(1, 6)),
                  floor=float(rng.choice([0.0, 0.05, 0.2])), tau=float(rng.choice([0.05, 0.1, 0.2])),
                  k_flag=int(rng.integers(2, 15)))
    return est, truth, ctx


def test_metrics_are_registered_in_order_with_one_primary():
    assert METRICS.names() == ORDER and primary_metric().name == "mcc"
    assert [m for m in ORDER if METRICS[m].correlation] == ["mcc", "rank_full", "rank_late", "rank_flagged",
                                                             "spearman_w"]
    assert {m for m in ORDER if not METRICS[m].higher_is_better} == {"target_error", "false_alarm", "miss",
                                                                     "mae_norm"}
    assert {m for m in ORDER if METRICS[m].chance is None} == {"recall", "false_alarm", "miss"}
    with pytest.raises(AdvdlaError, match="already is"):
        register_metric("second-primary", higher_is_better=True, description="", reference=lambda *a: 0.0,
                        chance=None, primary=True)(lambda *a: 0.0)
    assert "second-primary" not in METRICS


@pytest.mark.parametrize("name", ORDER)
def test_metric_equals_its_loop_reference(name):
    spec, rng = METRICS[name], np.random.default_rng(sum(map(ord, name)))
    defined = 0
    for _ in range(220):
        est, truth, ctx = _random_case(rng)
        fast, slow = spec.fn(est, truth, ctx), spec.reference(est.tolist(), truth.tolist(), ctx)
        assert isinstance(fast, float) and _same(fast, slow), (name, fast, slow, est, truth, ctx)
        defined += not math.isnan(fast)
    assert defined >= 50  # the comparison is not only NaN == NaN


def _plain_ap(order, matters):
    hits, total = 0, 0.0
    for place, i in enumerate(order, start=1):
        if matters[i]:
            hits += 1
            total += hits / place
    return total / sum(matters)


def test_auprc_is_the_average_over_every_way_to_break_its_ties():
    """On small panels: AP averaged over all orders consistent with |est| (each tie broken every possible way)."""
    rng = np.random.default_rng(11)
    for _ in range(40):
        n = int(rng.integers(3, 7))
        est, truth = rng.integers(-2, 3, n).astype(float), rng.integers(-2, 3, n).astype(float)
        ctx = Context(target=0, ld=10.0, late=np.ones(n, bool))
        matters = list(np.abs(truth) >= 1.0)
        orders = [p for p in itertools.permutations(range(n))
                  if all(abs(est[a]) >= abs(est[b]) for a, b in zip(p, p[1:]))]
        want = np.mean([_plain_ap(p, matters) for p in orders]) if any(matters) else float("nan")
        assert _same(METRICS["auprc"].fn(est, truth, ctx), float(want))


def test_a_perfect_estimate_scores_the_best_value():
    rng, seen = np.random.default_rng(1), {m: 0 for m in ORDER}
    for _ in range(200):
        _, truth, ctx = _random_case(rng)
        for m in ORDER:
            value, best = METRICS[m].fn(truth, truth, ctx), 1.0 if METRICS[m].higher_is_better else 0.0
            assert math.isnan(value) or value == pytest.approx(best, abs=1e-12), (m, value)
            seen[m] += not math.isnan(value)
    assert min(seen.values()) >= 20, seen


def _uninformed(rng, n, ld):
    return {"random": rng.normal(0, rng.uniform(0.05, 1) * abs(ld), n), "zeros": np.zeros(n), "ones": np.ones(n),
            "ld": np.full(n, ld)}


@pytest.fixture(scope="module")
def uninformed():
    """Per estimator and metric: (values, chance values) over 400 synthetic examples, chance NaN where value is."""
    rng = np.random.default_rng(2024)
    out = {e: {m: ([], []) for m in ORDER} for e in ("random", "zeros", "ones", "ld")}
    for _ in range(400):
        n = int(rng.integers(5, 61))
        ld = float(rng.choice([-1, 1]) * rng.uniform(0.5, 5))
        truth = _truth(rng, n, ld)
        ctx = Context(target=int(rng.integers(n)), ld=ld, late=np.arange(n) >= rng.integers(0, n - 2))
        for name, est in _uninformed(rng, n, ld).items():
            for m in ORDER:
                v, spec = METRICS[m].fn(est, truth, ctx), METRICS[m]
                out[name][m][0].append(v)
                out[name][m][1].append(np.nan if spec.chance is None or math.isnan(v) else spec.chance(truth, ctx))
    return {e: {m: (np.array(v), np.array(c)) for m, (v, c) in ms.items()} for e, ms in out.items()}


@pytest.mark.parametrize("estimator", ["random", "zeros", "ones", "ld"])
def test_uninformed_estimates_score_at_chance(uninformed, estimator):
    """Higher-is-better metrics: the mean difference from chance has 0 in its 99% bootstrap interval. Errors
    (chance: the zero estimate's): zero is exactly at chance, no other uninformed estimate beats it."""
    checked = []
    for m in ORDER:
        values, chance = uninformed[estimator][m]
        ok = ~np.isnan(values) & ~np.isnan(chance)
        if METRICS[m].chance is None or not ok.any():
            continue
        diff = values[ok] - chance[ok]
        lo, hi = bootstrap_ci(diff, n_boot=4000, seed=0, level=0.99)
        if METRICS[m].higher_is_better:
            assert lo <= 0 <= hi or (diff == 0).all(), (m, diff.mean(), lo, hi)
        elif estimator == "zeros":
            assert (diff == 0).all(), m
        else:
            assert hi >= 0, (m, diff.mean(), lo, hi)
        checked.append(m)
    if estimator == "random":
        assert set(checked) == {m for m in ORDER if METRICS[m].chance is not None}
    else:  # a constant: no rank correlation is defined; the others are checked
        assert {"mcc", "auprc", "target_error", "topk_recall", "auroc", "sign_agreement", "mae_norm"} <= set(checked)
        mcc = uninformed[estimator]["mcc"][0]
        assert (~np.isnan(mcc)).sum() > 300 and (mcc[~np.isnan(mcc)] == 0).all()  # a constant call scores exactly 0


def test_mcc_not_f1_is_zero_for_everything_matters():
    """Two estimators that know nothing: "everything matters" (est = LD) and a sparse random call (about 1 component
    in 10). MCC gives both 0; F1 gives the first 2b/(1+b) at base rate b and the second far less: F1's "chance"
    depends on how often an estimator calls, so no F1 value says "no better than guessing"."""
    rng = np.random.default_rng(7)
    f1 = {"everything": [], "sparse": []}
    mcc = {"everything": [], "sparse": []}
    for _ in range(300):
        n = int(rng.integers(5, 61))
        ld = float(rng.choice([-1, 1]) * rng.uniform(0.5, 5))
        truth, ctx = _truth(rng, n, ld), Context(target=0, ld=ld, late=np.ones(n, bool))
        base = float(np.mean(np.abs(truth) >= 0.1 * abs(ld)))
        for name, est in (("everything", np.full(n, ld)), ("sparse", (rng.random(n) < 0.1) * ld)):
            p, r = METRICS["precision"].fn(est, truth, ctx), METRICS["recall"].fn(est, truth, ctx)
            if not (math.isnan(p) or math.isnan(r) or base in (0, 1)):
                f1[name].append(2 * p * r / (p + r) if p + r else 0.0)
                mcc[name].append(METRICS["mcc"].fn(est, truth, ctx))
                if name == "everything":
                    assert f1[name][-1] == pytest.approx(2 * base / (1 + base))
    assert all(v == 0 for v in mcc["everything"])
    lo, hi = bootstrap_ci(np.array(mcc["sparse"]), n_boot=4000, level=0.99)
    assert lo <= 0 <= hi
    assert np.mean(f1["everything"]) > 0.3 and np.mean(f1["everything"]) > np.mean(f1["sparse"]) + 0.15


# ------------------------------------------------------------------------------------------------ examples

PANEL = ["embed", "L0H0", "L0H1", "MLP0", "L1H0", "MLP1", "L2H0", "MLP2", "L3H0", "L3H1", "MLP3", "L4H0", "MLP4"]


def _example(te, *, de=None, target="L0H0", ld=2.0, panel=None, eid="hand", kind="adversarial",
             mechanism="compensation", source_doc=-1, split="dev"):
    """A hand-made example: only the truth's te_mean / de_mean, panel, target and LD matter to the metrics."""
    panel = panel or [f"L0H{i}" for i in range(len(te))]
    zeros = torch.zeros(len(te), dtype=torch.float64)
    de = zeros if de is None else torch.tensor(de, dtype=torch.float64)
    truth = Truth(t1=0, t2=1, ld=ld, panel=panel, dla=zeros, te_mean=torch.tensor(te, dtype=torch.float64),
                  te_std=zeros, de_mean=de, de_std=zeros, ie_mean=zeros, te_zero=zeros)
    return Example(example_id=eid, split=split, kind=kind, text="", tokens=torch.zeros(2, dtype=torch.long),
                   resamples=torch.zeros(1, 2, dtype=torch.long), method_resamples=torch.ones(1, 2, dtype=torch.long),
                   target=target, truth=truth, mechanism=mechanism, source_doc=source_doc)


def test_metrics_on_hand_made_numbers():
    ex = _example([0.0, 2.0, -1.0, 0.5, 0.1], target="L0H0")  # tau |LD| = 0.2: 1, 2, 3 matter
    m = example_metrics([3.0, 2.0, -1.0, 0.5, 0.1], ex, k=2)  # the method also calls the target (a false alarm)
    assert m["precision"] == 0.75 and m["recall"] == 1.0 and m["false_alarm"] == 1.0 and math.isnan(m["miss"])
    assert m["mcc"] == pytest.approx((3 * 1 - 1 * 0) / math.sqrt(4 * 3 * 1 * 2))
    assert m["target_error"] == 1.5 and m["topk_recall"] == 0.5 and m["mae_norm"] == pytest.approx(3.0 / 5 / 2.0)
    assert m["auroc"] == 0.5 and m["sign_agreement"] == 1.0
    flipped = example_metrics([0.0, -2.0, 1.0, -0.5, -0.1], ex, k=2)
    assert flipped["sign_agreement"] == 0.0 and flipped["rank_full"] == pytest.approx(-1.0)
    assert flipped["mcc"] == 1.0 and flipped["false_alarm"] == 0.0  # |estimate| is right: the calls are
    quiet = example_metrics([0.0, 0.0, 0.0, 0.0, 0.0], ex)
    assert quiet["mcc"] == 0.0 and math.isnan(quiet["precision"]) and quiet["recall"] == 0.0
    assert quiet["sign_agreement"] == 0.5 and math.isnan(quiet["rank_full"])  # no sign claimed; constant: undefined
    hit = _example([0.0, 2.0, -1.0, 0.5, 0.1], target="L0H1")
    assert example_metrics([0.0, 0.1, 0.0, 0.0, 0.0], hit)["miss"] == 1.0


def test_weighted_spearman_weighs_what_matters():
    truth = [5.0, 0.01, -0.02, 0.03, 2.0]
    est = [4.0, 3.0, -1.0, -2.0, 1.0]  # the two that matter in the right order, the near-zero ones scrambled
    m = example_metrics(est, _example(truth), k=2)
    assert m["spearman_w"] > 0.9 > 0.5 > m["rank_full"]


def test_rank_flagged_looks_only_at_what_the_method_points_at():
    truth = np.array([5.0, 4.0, 3.0, 0.3, 0.2, 0.1, 0.0, -0.1, -0.2, -0.3, -0.4, -0.5])
    est = np.concatenate([[9.0, 8.0, 7.0], np.random.default_rng(0).permutation(truth[3:])[::-1] * 0.01])
    ctx = Context(target=0, ld=2.0, late=np.ones(12, bool), k_flag=3)
    assert METRICS["rank_flagged"].fn(est, truth, ctx) == pytest.approx(1.0)
    assert METRICS["rank_full"].fn(est, truth, ctx) < 0.9


def test_context_reads_the_late_panel_from_the_names():
    ex = _example(list(np.linspace(-1, 1, len(PANEL))), panel=PANEL, target="L4H0")
    ctx = example_context(ex, tau=0.2, k=4)
    assert ctx.target == PANEL.index("L4H0") and ctx.ld == 2.0 and (ctx.tau, ctx.k, ctx.floor) == (0.2, 4, 0.05)
    assert [c for c, late in zip(PANEL, ctx.late) if late] == ["L1H0", "MLP1", "L2H0", "MLP2", "L3H0", "L3H1", "MLP3",
                                                               "L4H0", "MLP4"]
    assert example_context(_example([1.0] * len(PANEL), panel=PANEL, target="MLP1")).late.all()  # 1 - 3 < embed's -1
    moved = example_context(ex, cfg_layers={"embed": 9})
    assert moved.late[0] and not moved.late[1]


def test_against_de_and_bad_inputs():
    ex = _example([0.0, 2.0, -1.0, 0.5], de=[1.0, 2.0, 0.0, -0.5])
    de = example_metrics([1.0, 2.0, 0.0, -0.5], ex, against="de")
    assert de["mcc"] == 1.0 and de["target_error"] == 0.0 and de["mae_norm"] == 0.0
    assert example_metrics([1.0, 2.0, 0.0, -0.5], ex)["target_error"] == 0.5  # the same estimate against TE
    assert example_chance(ex)["target_error"] == 0.0 and example_chance(ex, against="de")["target_error"] == 0.5
    for call, msg in ((lambda: example_metrics([0.0] * 4, ex, against="ie"), "unknown truth 'ie'"),
                      (lambda: example_metrics([0.0] * 3, ex), "3 estimates for a panel of 4"),
                      (lambda: per_example_frame("m", {"hand": [0.0] * 4}, [ex], estimand="both"),
                       "unknown estimand 'both'"),
                      (lambda: example_context(_example([0.0] * 4, target="MLP9")), "not in its panel")):
        with pytest.raises(AdvdlaError, match=msg) as err:
            call()
        assert "\n" not in str(err.value)


def _suite(rng, n=24):
    out = []
    for i in range(n):
        te, de = _truth(rng, len(PANEL), 2.0), _truth(rng, len(PANEL), 2.0)
        kind = "adversarial" if i % 2 else "natural"
        out.append(_example(list(te), de=list(de), panel=PANEL, target="L3H0", eid=f"e{i}", kind=kind,
                            mechanism=("compensation", "baseline")[i % 4 // 2] if i % 2 else "none",
                            source_doc=i // 3, split=("dev", "test")[i // 2 % 2]))
    return out


@pytest.mark.parametrize("estimand", list(AGAINST))
def test_the_aggregated_frame(estimand):
    rng = np.random.default_rng(5)
    examples = _suite(rng)
    est = {e.example_id: list(e.truth.de_mean.numpy() + rng.normal(0, 0.3, len(PANEL))) for e in examples}
    frame, per = score_estimates("m", est, examples, estimand=estimand, n_boot=200)
    assert list(frame.columns) == FRAME_COLUMNS and set(frame["against"]) == set(AGAINST[estimand])
    assert set(per["against"]) == set(AGAINST[estimand]) and len(per) == len(examples) * len(ORDER) * len(
        AGAINST[estimand])
    assert set(frame["kind"]) == {"adversarial", "natural", "all", "compensation", "baseline"}
    assert frame[frame.metric.isin(["recall", "false_alarm", "miss"])]["chance"].isna().all()
    for (metric, against), rows in per[per.split == "dev"].groupby(["metric", "against"]):
        got = frame[(frame.split == "dev") & (frame.kind == "all") & (frame.metric == metric)
                    & (frame.against == against)].iloc[0]
        assert got.n == rows["value"].notna().sum() and _same(got.value, rows["value"].mean())
        assert _same(got.chance, rows["chance"].mean()) and rows["chance"].isna().ge(rows["value"].isna()).all()
    mcc = frame[(frame.metric == "mcc") & (frame.kind == "all")]
    assert (mcc["chance"] == 0).all() and (mcc["lo"] <= mcc["value"]).all() and (mcc["value"] <= mcc["hi"]).all()
    if estimand == "direct":  # the estimate is DE plus noise: it does far better against DE than against TE
        by = mcc[mcc.split == "dev"].set_index("against")["value"]
        assert by["de"] > by["te"] + 0.3
    one = {e.example_id: "one" for e in examples}
    clustered = per_example_frame("m", est, examples, estimand=estimand, clusters=one)
    assert set(clustered["cluster"]) == {"one"} and set(per["cluster"]) == {f"doc{i}" for i in range(8)}
