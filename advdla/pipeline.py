"""The main job, ``advdla run``: every stage of advdla once, small enough to finish in minutes on a laptop CPU.

Context: each stage is a plain call into its own module; this module only sizes them and wires their outputs
into the next stage's inputs, in one output folder::

    model       load_model(name)                          fetched/converted into $ADVDLA_HOME on first use
    analysis    erasure.analyze on a corpus sample        OUT/analysis.json   writers, erasers, overrated heads
    search      search.run_search on the auto target      OUT/search/         adversarial examples (parquet)
    suite       suite_build from a small config           OUT/suites/NAME/    dev/test splits, manifest
    scores      scoring, every built-in method, dev split OUT/results/*.json  one result record per method
    leaderboard leaderboard.add_record + render           OUT/leaderboard/    records and LEADERBOARD.md

Intuition: the defaults are the smallest sizes at which the result still says something (a handful of
adversarial and natural examples, R = 2 resamples, a few dozen search trials); ``--quick`` shrinks them
further. The suites worth publishing are built from a config with ``advdla suite build``; ``run`` shows the
whole path and where each piece lands.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from advdla.atomic import write_json_atomic
from advdla.errors import AdvdlaError

__all__ = ["RunPlan", "plan_run", "run_pipeline", "STAGES"]

STAGES = ("model", "analysis", "search", "suite", "scores", "leaderboard")
Report = Callable[[str], None]


@dataclass(frozen=True)
class RunPlan:
    """Every size ``advdla run`` uses; printed at the start and saved as OUT/run.json."""

    model: str
    out: str
    seed: int = 0
    prompts: int = 12        # analysis: corpus windows
    seq_len: int = 16        # tokens per prompt (analysis, search and suite)
    resamples: int = 2       # R: resamples per example for ground truth
    overrated_top: int = 6   # analysis: components whose total effect is measured
    trials: int = 96         # search: Optuna trials (one candidate prompt each), asked and scored `batch` at a time
    batch: int = 16
    # What counts as adversarial in a run: looser than the search's defaults (top 3, LD > 1, DLA >= 30% of LD,
    # |TE| <= 10% of it), because a few dozen trials on a real model find almost nothing at those; recorded in
    # the suite's manifest. Suites built with `advdla suite build` use their config's thresholds.
    thresholds: tuple[tuple[str, float], ...] = (("top_k", 5), ("margin", 0.5), ("min_dla_share", 0.25),
                                                 ("max_te_share", 0.15))
    n_dev: int = 6           # suite: adversarial examples per split ...
    n_test: int = 4
    n_natural: int = 4       # ... and natural controls per split
    max_panel: int = 10      # suite: panel size on large models (target + top |DLA| + top |AtP| + random)
    n_base: int = 24         # search: base corpus windows (each pre-screened: one forward per window)
    pool_size: int = 48      # search: candidate tokens per free slot
    verify_resamples: int = 4  # search: fresh resamples for the slow-path re-verification of each example
    methods: str = "all"     # every built-in method (plug-ins: name them)
    ig_steps: int = 8        # integrated gradients' steps (its cost grows with them; recorded in its result record)
    force: bool = False      # replace a suite a previous run left in OUT

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def plan_run(model: str, *, out: str, quick: bool = False, seed: int = 0, force: bool = False,
             methods: str = "all") -> RunPlan:
    """The default sizes, or the ``--quick`` ones (about half the work of every stage)."""
    from advdla.methods import resolve_methods

    if methods != "all":
        resolve_methods(methods)  # a typo stops here, before any work
    plan = RunPlan(model=model, out=out, seed=seed, force=force, methods=methods)
    if quick:
        plan = dataclasses.replace(plan, prompts=6, overrated_top=4, trials=48, n_dev=3, n_test=2, n_natural=2,
                                   max_panel=7, ig_steps=4, n_base=16, pool_size=32, verify_resamples=2)
    return plan


@dataclass
class RunOutputs:
    """What a run wrote, stage by stage, and how long each stage took."""

    paths: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def run_pipeline(plan: RunPlan, *, report: Report | None = None, on_stage: Callable[[str], None] | None = None) -> RunOutputs:
    """Run every stage in order; ``on_stage(name)`` is called as each starts, ``report(msg)`` for progress inside it."""
    from advdla.suite import check_destination

    report = report or (lambda msg: None)
    out = Path(plan.out)
    check_destination(out / "suites" / suite_name(plan.model), force=plan.force)  # fail before any work
    out.mkdir(parents=True, exist_ok=True)
    outputs = RunOutputs()
    write_json_atomic(out / "run.json", plan.to_dict())
    outputs.paths["plan"] = out / "run.json"
    state: dict[str, Any] = {}
    for name in STAGES:
        if on_stage:
            on_stage(name)
        t0 = time.perf_counter()
        _STAGE_FUNCTIONS[name](plan, out, state, outputs, report)
        outputs.seconds[name] = round(time.perf_counter() - t0, 1)
    return outputs


# ------------------------------------------------------------------------------------------------ stages

def _stage_model(plan: RunPlan, out: Path, state: dict, outputs: RunOutputs, report: Report) -> None:
    from advdla.models import load_model

    report(f"loading {plan.model} (the first use fetches and converts it)")
    state["bridge"] = load_model(plan.model)
    outputs.notes["model"] = state["bridge"].advdla_card.weights_fingerprint[:12]


def _stage_analysis(plan: RunPlan, out: Path, state: dict, outputs: RunOutputs, report: Report) -> None:
    """A small erasure analysis; its most overrated head (DLA - TE, with a downstream reader) is the search target."""
    from advdla.erasure import analyze, sample_prompts

    bridge = state["bridge"]
    tokens, resamples = sample_prompts(bridge, n=plan.prompts, seq_len=plan.seq_len, resamples=plan.resamples,
                                       seed=plan.seed)
    analysis = analyze(bridge, tokens, resamples, n_writers=1, overrated_top=plan.overrated_top, seed=plan.seed,
                       step=report)
    write_json_atomic(out / "analysis.json", analysis.to_dict())
    outputs.paths["analysis"] = out / "analysis.json"
    state["target"], row = _auto_target(bridge, tokens, resamples, analysis.overrated, top=plan.overrated_top)
    outputs.notes["analysis"] = (f"{len(analysis.writers)} writers; target {state['target']}: DLA {row['dla']:.2f}, "
                                 f"TE {row['te']:.2f} (means over prompts)")


def suite_name(model: str) -> str:
    """The run's suite name: the model's, made folder-safe, plus ``-run``."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(model).name) + "-run"


def _auto_target(bridge: Any, tokens: Any, resamples: Any, overrated: list[dict[str, Any]], *, top: int) -> tuple[str, dict]:
    """The attention head whose DLA most overstates its total effect (suites are built on heads).

    The analysis ranks heads and MLPs together; on SmolLM2 its top components by |DLA| are often all MLPs,
    so the heads with the largest mean DLA are then ranked on their own.
    """
    from advdla.attribution import dla
    from advdla.components import all_components, head_components, is_downstream
    from advdla.erasure import overrated_components

    heads = [c for c in head_components(bridge.cfg) if any(is_downstream(d, c) for d in all_components(bridge.cfg))]
    names = {c.name for c in heads}
    rows = [r for r in overrated if r["component"] in names]
    if not rows:
        mean_dla = dla(bridge, tokens, components=heads).values.mean(0)
        picked = [heads[i] for i in mean_dla.topk(min(top, len(heads))).indices.tolist()]
        rows = overrated_components(bridge, tokens, resamples, components=picked).to_dict("records")
    if not rows:
        raise AdvdlaError("the analysis found no attention head that a later component reads: this model has "
                          "nothing for DLA to be wrong about")
    best = max(rows, key=lambda r: r["overstatement"])
    return best["component"], best


def _stage_search(plan: RunPlan, out: Path, state: dict, outputs: RunOutputs, report: Report) -> None:
    """A short search on the target; extended (the same study resumes) while it has too few verified examples."""
    from advdla.search import SearchConfig, run_search
    from advdla.search.objectives import Thresholds

    need = 2  # at least one dev and one test example
    config = SearchConfig(target=state["target"], trials=plan.trials, batch=plan.batch, resamples=plan.resamples,
                          seq_len=plan.seq_len, seed=plan.seed, max_examples=2 * (plan.n_dev + plan.n_test),
                          max_verify=plan.n_dev + plan.n_test + 2, thresholds=Thresholds(**dict(plan.thresholds)),
                          n_base=plan.n_base, pool_size=plan.pool_size, verify_resamples=plan.verify_resamples)
    for attempt in range(3):
        result = run_search(state["bridge"], config, out_dir=out / "search", progress=True)
        found = _verified(result)
        if len(found) >= plan.n_dev + plan.n_test or (len(found) >= need and attempt > 0):
            break
        report(f"{len(found)} verified examples after {config.trials} trials: extending the search")
        config = dataclasses.replace(config, trials=2 * config.trials)
    if len(found) < need:
        raise AdvdlaError(f"the search found {len(found)} verified adversarial examples for {state['target']} in "
                          f"{config.trials} trials, at least {need} needed: try `advdla run --seed 1` or more --trials")
    state["search"], state["search_config"] = result, config
    outputs.paths["search"] = out / "search"
    counts = result.summary.get("counts", {})
    outputs.notes["search"] = (f"{len(found)} verified adversarial examples for {state['target']} in "
                               f"{counts.get('study_complete_trials')} trials")


def _verified(result: Any) -> Any:
    frame = result.examples
    return frame[frame["verified"].astype(bool)] if len(frame) else frame


def _stage_suite(plan: RunPlan, out: Path, state: dict, outputs: RunOutputs, report: Report) -> None:
    """A small suite from the search's examples (no second search), then verified on the model."""
    from advdla.groundtruth import PanelPolicy
    from advdla.suite import verify_suite
    from advdla.suite_build import build_suite
    from advdla.suite_config import SearchBudget, SplitSizes, SuiteConfig

    found = len(_verified(state["search"]))
    n_test = min(plan.n_test, found // 2)
    n_dev = min(plan.n_dev, found - n_test)
    per = max(plan.max_panel - 1, 3) // 3  # the target, then equal shares: top |DLA|, top |AtP|, random
    sc = state["search_config"]
    cfg = SuiteConfig(name=suite_name(plan.model), model=plan.model, seq_len=plan.seq_len, seed=plan.seed,
                      description=f"a small suite made by `advdla run` on {plan.model}", targets=[state["target"]],
                      search=SearchBudget(trials=sc.trials, batch=sc.batch, sampler=sc.sampler), resamples=plan.resamples,
                      thresholds=dict(plan.thresholds),
                      panel=PanelPolicy(top_dla=per, top_atp=per, n_random=per),
                      splits=SplitSizes(n_dev=n_dev, n_test=n_test, n_natural=plan.n_natural))
    dest = out / "suites" / cfg.name
    build_suite(cfg, dest, bridge=state["bridge"], find=_reuse(state["search"], sc), force=plan.force)
    report("verifying the suite (hashes, fingerprint chain, one example re-derived)")
    verify_suite(dest, sample=1, bridge=state["bridge"], seed=plan.seed)
    state["suite"] = dest
    outputs.paths["suite"] = dest
    outputs.notes["suite"] = f"dev {n_dev} adversarial + {plan.n_natural} natural, test {n_test} + {plan.n_natural}"


def _reuse(result: Any, sc: Any) -> Callable[..., Any]:
    """A suite-build candidate finder that hands over the search's verified examples instead of searching again."""
    from advdla.suite_build import candidates_from_search

    def find(bridge: Any, target: Any, *, cfg: Any, seed: int, n: int, windows: Any, out_dir: Path,
             bar: Any = None) -> tuple[list[Any], dict[str, Any]]:
        return candidates_from_search(result, sc, windows, target.name, engine="advdla.search.run_search (advdla run)")

    return find


def _stage_scores(plan: RunPlan, out: Path, state: dict, outputs: RunOutputs, report: Report) -> None:
    """Every built-in method on the suite's dev split; one result record per method."""
    from advdla.methods import available_methods, resolve_methods
    from advdla.report import progress
    from advdla.scoring import make_record, run_method, score_estimates, write_records
    from advdla.suite import load_suite

    suite = load_suite(state["suite"])
    rows = suite.rows(split="dev")
    names = ([n for n, spec in available_methods().items() if spec.source == "builtin"] if plan.methods == "all"
             else resolve_methods(plan.methods))
    records = []
    with progress(transient=False) as bar:
        task = bar.add_task("scoring", total=len(names) * len(rows), info="")
        for name in names:
            bar.update(task, info=name)
            params = {"steps": plan.ig_steps} if name == "ig" else None
            run = run_method(state["bridge"], name, rows, seed=plan.seed, params=params,
                             on_batch=lambda k: bar.update(task, advance=k))
            if run.error:
                report(f"skipped: {run.error}")
                continue
            frame = score_estimates(name, run.estimates, rows, k=3, seed=plan.seed)
            records.append(make_record(run, frame, suite.manifest, split="dev", k=3, n_examples=len(rows), device="cpu"))
    if not records:
        raise AdvdlaError("every method failed on the suite: see the lines above")
    write_records(out / "results" / "dev.json", records)
    state["records"] = records
    outputs.paths["results"] = out / "results" / "dev.json"
    outputs.notes["scores"] = f"{len(records)} methods on {len(rows)} dev examples"


def _stage_leaderboard(plan: RunPlan, out: Path, state: dict, outputs: RunOutputs, report: Report) -> None:
    from advdla.leaderboard import add_record, write_markdown

    board = out / "leaderboard"
    for record in state.get("records", []):
        add_record(record, board, suites_dir=out / "suites")
    outputs.paths["leaderboard"] = board
    outputs.paths["leaderboard_md"] = write_markdown(board, suites_dir=out / "suites")


_STAGE_FUNCTIONS = {"model": _stage_model, "analysis": _stage_analysis, "search": _stage_search, "suite": _stage_suite,
                    "scores": _stage_scores, "leaderboard": _stage_leaderboard}


# --------------------------------------------------------------------------------------------- helpers
