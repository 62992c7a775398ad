"""The main job, ``advdla run``: every stage of advdla once, small enough to finish in minutes on a laptop CPU.

Context: each stage is a plain call into its own module; this module only sizes them and wires their outputs
into the next stage's inputs, in one output folder::

    model       load_model(name)                          fetched/converted into $ADVDLA_HOME on first use
    analysis    erasure.analyze on a corpus sample        OUT/analysis.json   writers, erasers, overrated heads
    search      search.run_search on the auto target      OUT/search/         adversarial examples (parquet)
    suite       suites.build_suite from a small config    OUT/suites/NAME/    dev/test splits, manifest
                (+ the shipped suite's dev examples)
    scores      scoring, every built-in method, dev split OUT/results/*.json  one result record per method
    leaderboard leaderboard.add_record + render           OUT/leaderboard/    records and LEADERBOARD.md

Intuition: the defaults are the smallest sizes at which the result still says something (a handful of
adversarial and natural examples, R = 2 resamples, a few hundred search trials); ``--quick`` shrinks them
further. The suites worth publishing are built from a config with ``advdla suite build``; ``run`` shows the
whole path and where each piece lands.

A verdict needs more examples than minutes of search find, so where the project ships a suite for the model
(``suites/*/``, :func:`advdla.suites.imported.shipped_suite`) the run adds that suite's dev examples to its own
(their truth took hours) and takes its resample counts; every row's panel is then the late one: each head and
MLP from ``late_layers`` layers before the earliest target on (:class:`advdla.suites.PanelPolicy` ``min_layer``),
where compensation happens and patching is cheap. The output says how many rows come from where.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advdla.atomic import write_json_atomic
from advdla.components import Component, parse_component
from advdla.corpus import TokenWindows, load_corpus, split_documents
from advdla.criteria import Thresholds
from advdla.erasure import analyze, rank_targets, sample_prompts
from advdla.errors import AdvdlaError
from advdla.leaderboard import add_record, write_markdown
from advdla.methods import available_methods, resolve_methods
from advdla.models import expected_weights, load_model
from advdla.progress import Progress, silent
from advdla.scoring import ResultRecord, read_records, score_suite, write_records
from advdla.search import SearchConfig, SearchResult, read_search, run_search, verified_examples
from advdla.suites import PanelPolicy, SuiteConfig, build_suite, check_destination, load_suite, verify_suite
from advdla.suites.build import candidates_from_search
from advdla.suites.config import SearchBudget, SplitSizes
from advdla.suites.imported import choose_shipped, import_examples, suite_fit
from advdla.suites.store import read_manifest

__all__ = ["RunPlan", "RunState", "RunOutputs", "plan_run", "run_pipeline", "check_out", "finished_stages",
           "fitting_seq_len", "STAGES"]

STAGES = ("model", "analysis", "search", "suite", "scores", "leaderboard")
STAGES_FILE = "stages.json"  # the finished stages of the run in OUT, for a re-run to resume
Report = Callable[[str], None]


@dataclass(frozen=True)
class RunPlan:
    """Every size ``advdla run`` uses; printed at the start and saved as OUT/run.json."""

    model: str
    out: str
    seed: int = 0
    prompts: int = 12  # analysis: corpus windows
    seq_len: int = 16  # tokens per prompt (analysis, search and suite)
    resamples: int = 2  # R_truth: the truth's resamples per example
    analysis_resamples: int = 2  # the analysis's resamples per prompt
    method_resamples: int = 2  # R_method: the methods' own resamples (other documents)
    overrated_top: int = 6  # analysis: components whose total effect is measured
    trials: int = 384  # search: Optuna trials per split (one candidate prompt each), asked and scored `batch` at a time
    # search: TE over this many fixed resamples per candidate; with 2 or 4 most fast hits failed the re-verification
    # on fresh ones (SmolLM2: 3 of 14 at 2, 6 of 43 at 4: the local search fits TE to the resamples it sees)
    search_resamples: int = 8
    batch: int = 16
    # What counts as adversarial in a run: looser than the search's defaults (top 3, LD > 1, DLA >= 30% of LD,
    # |TE| <= 10% of it), because a few dozen trials on a real model find almost nothing at those; recorded in
    # the suite's manifest. Suites built with `advdla suite build` use their config's thresholds.
    thresholds: tuple[tuple[str, float], ...] = (
        ("top_k", 5),
        ("margin", 0.5),
        ("min_dla_share", 0.25),
        ("max_te_share", 0.15),
    )
    # suite: adversarial examples per split, and natural controls per split. The leaderboard scores the dev split,
    # so it holds the 20+ adversarial and 20+ natural examples a verdict needs; test keeps a few adversarial ones
    # (its natural controls come with the one n_natural of the suite config).
    n_dev: int = 24
    n_test: int = 3
    n_natural: int = 20
    max_full: int = 64  # suite: every head and MLP in the panel up to this many (planted: 15) ...
    panel_size: int = 24  # ... else the target and the largest |TE| on one screen resample (SmolLM2: 24 of 300)
    n_base: int = 48  # search: base corpus documents (8 windows of each pre-screened: one forward per window)
    pool_size: int = 48  # search: candidate tokens per free slot
    verify_resamples: int = 4  # search: fresh resamples for the slow-path re-verification of each example
    methods: str = "all"  # every built-in method (plug-ins: name them)
    # Options that override a method's registered defaults (advdla.methods.MethodSpec.params), e.g. fewer
    # integrated-gradient steps: IG's cost grows with them; the record of each method keeps what it ran with.
    method_params: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = (("ig", (("steps", 4),)),)
    # A shipped suite of this model whose dev examples join the run's ("none": only the run's own; plan_run's
    # default "auto" resolves to the project's suite of the model where it ships one). With one the run takes its
    # R_truth and R_method, searches dev only and finds few natural controls of its own.
    shipped: str = "none"
    shipped_max: int = 20  # shipped dev examples of each kind (adversarial, natural) at most
    late_layers: int = 3  # with a shipped suite: every row's panel starts this many layers before the first target
    force: bool = False  # replace a suite a previous run left in OUT
    device: str = "cpu"  # where the model runs (every stage: the tensors follow the model)
    notes: tuple[str, ...] = ()  # what planning decided that the user should hear (a shipped suite skipped, ...)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def params(self) -> dict[str, dict[str, Any]]:
        return {name: dict(opts) for name, opts in self.method_params}


def plan_run(
    model: str, *, out: str, quick: bool = False, seed: int = 0, force: bool = False, methods: str = "all",
    device: str = "cpu", shipped: str = "auto", seq_len: int | None = None,
) -> RunPlan:
    """The default sizes, or the ``--quick`` ones (about half the work of every stage).

    ``seq_len``: the prompts' length, where the default (16) does not fit the model (:func:`fitting_seq_len`).

    ``shipped``: a suite folder whose dev examples join the run's, ``auto`` (the default: of the suites of
    ``model`` with the run's prompt length in the project's ``suites/`` folder, the one with the most dev
    adversarial examples, if any) or ``none``.
    """
    if methods != "all":
        resolve_methods(methods)  # a typo stops here, before any work
    plan = RunPlan(model=model, out=out, seed=seed, force=force, methods=methods, device=device)
    if seq_len is not None and seq_len != plan.seq_len:
        plan = dataclasses.replace(plan, seq_len=seq_len, notes=(
            f"the default prompt length of {plan.seq_len} tokens does not fit {model} (the search's pre-screen "
            f"reads windows of twice that): the run uses {seq_len}",))
    if quick:
        plan = dataclasses.replace(
            plan,
            prompts=6,
            overrated_top=4,
            trials=128,
            n_dev=8,
            n_test=2,
            n_natural=8,
            method_params=(("ig", (("steps", 2),)),),
            n_base=16,
            pool_size=32,
            verify_resamples=2,
            shipped_max=6,
        )
    return _with_shipped(plan, shipped)


SUITES_DIR = Path(__file__).resolve().parents[1] / "suites"  # the project's shipped suites (a source checkout)


def _with_shipped(plan: RunPlan, shipped: str) -> RunPlan:
    """The plan with its shipped suite resolved (a path or "none") and, with one, the sizes it implies.

    A suite fits when it is of the run's model, prompt length and weights (the fingerprint the registry says the
    model loads; checked again on the loaded model in the model stage): ``auto`` skips one that does not, with a
    note; a named one that does not stops here, before any stage runs.
    """
    weights = expected_weights(plan.model)
    if shipped == "auto":
        path, skipped = choose_shipped(plan.model, SUITES_DIR, seq_len=plan.seq_len, weights=weights)
        plan = dataclasses.replace(plan, notes=plan.notes + tuple(skipped))
    else:
        path = None if shipped == "none" else shipped
    if path is None:
        return plan
    m = read_manifest(Path(path))
    problem = suite_fit(m, plan.model, seq_len=plan.seq_len, weights=weights)
    if problem:
        raise AdvdlaError(f"--shipped {path} {problem}: name a suite built on the run's model with "
                          f"{plan.seq_len}-token prompts, or pass --shipped none")
    # the shipped rows are most of the run's: a third of the fresh adversarial examples (fewer to re-verify on
    # the slow path), few natural ones, no test split; IG at half the points (2 Gauss points, 1 with --quick: on
    # SmolLM2's late panel within 1% and 9% of the exact patching effect; at 4 points within 0.02%)
    steps = max(1, plan.params().get("ig", {}).get("steps", 4) // 2)
    return dataclasses.replace(plan, shipped=str(path), resamples=m["config"]["resamples"],
                               method_resamples=m["config"]["method_resamples"], n_dev=max(1, plan.n_dev // 3),
                               n_test=0, n_natural=4, method_params=(("ig", (("steps", steps),)),))


@dataclass
class RunOutputs:
    """What a run wrote, stage by stage, and how long each stage took."""

    paths: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    resumed: list[str] = field(default_factory=list)  # stages a previous run into the same OUT had finished


@dataclass
class RunState:
    """What one stage hands to the next; each field is set by the stage named in its comment."""

    out: Path
    bridge: Any = None  # model
    target: Component | None = None  # analysis
    docs: dict[str, set[int]] = field(default_factory=dict)  # search: the corpus documents of each split
    search: dict[str, SearchResult] = field(default_factory=dict)  # search, per split
    suite: Path | None = None  # suite
    records: list[ResultRecord] = field(default_factory=list)  # scores
    outputs: RunOutputs = field(default_factory=RunOutputs)


def run_pipeline(
    plan: RunPlan,
    *,
    report: Report | None = None,
    on_stage: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> RunOutputs:
    """Run every stage in order; in a folder holding an interrupted or finished run of the same plan, resume it.

    ``on_stage(name)`` is called as each starts, ``report(msg)`` for a status line inside it, ``progress`` for
    the long loops (search trials, ground truth, scoring). A stage recorded as finished in ``OUT/stages.json``
    is loaded from what it wrote instead of run again (the model is always loaded); an unfinished search resumes
    its study and an unfinished suite build its partial build, so an interrupted run loses little.
    """
    report, progress, on_stage = report or (lambda msg: None), progress or silent, on_stage or (lambda name: None)
    out = Path(plan.out)
    done = check_out(plan)  # fail before any work
    out.mkdir(parents=True, exist_ok=True)
    state = RunState(out=out)
    write_json_atomic(out / "run.json", plan.to_dict())
    state.outputs.paths["plan"] = out / "run.json"
    stages = (
        ("model", lambda: stage_model(plan, state, report)),
        ("analysis", lambda: stage_analysis(plan, state, report)),
        ("search", lambda: stage_search(plan, state, report, progress)),
        ("suite", lambda: stage_suite(plan, state, report, progress)),
        ("scores", lambda: stage_scores(plan, state, report, progress)),
        ("leaderboard", lambda: stage_leaderboard(state)),
    )
    for name, stage in stages:
        on_stage(name)
        t0 = time.perf_counter()
        if name in done and name != "model":  # the model is always loaded
            _load_stage(name, plan, state, done[name])
            state.outputs.resumed.append(name)
        else:
            stage()
            state.outputs.seconds[name] = round(time.perf_counter() - t0, 1)
            if name != "model":
                done[name] = _finished(name, state)
                write_json_atomic(out / STAGES_FILE, {"plan": _plan_key(plan), "done": done})
        state.outputs.seconds[name] = round(time.perf_counter() - t0, 1)
    return state.outputs


# ------------------------------------------------------------------------------------------------ resume


NOT_KEYED = ("out", "force", "notes")  # plan fields a resumed run may change


def _plan_key(plan: RunPlan) -> dict[str, Any]:
    """What must match for a folder's run to be resumed: every size, not where it lives, --force or the notes."""
    return json.loads(json.dumps({k: v for k, v in plan.to_dict().items() if k not in NOT_KEYED}))


def fitting_seq_len(bridge: Any) -> int:
    """The run's prompt length on ``bridge``: the default, or the largest that fits the model's context with the
    search's pre-screen windows of twice that length (refused below the search's minimum of 4)."""
    fitted = min(RunPlan.seq_len, int(bridge.cfg.n_ctx) // 2)
    if fitted < 4:
        raise AdvdlaError(f"the model's context of {bridge.cfg.n_ctx} positions is too short for a run: the search "
                          f"needs windows of 2 x 4 tokens at least; use a model with a context of 8 or more")
    return fitted


def finished_stages(out: str | Path) -> list[str]:
    """The stages a run into ``out`` has finished and recorded (what a re-run of the same plan resumes from)."""
    record = _read_json(Path(out) / STAGES_FILE) or {}
    return [name for name in STAGES if name in record.get("done", {})]


def check_out(plan: RunPlan) -> dict[str, dict[str, Any]]:
    """The finished stages of a run of the same plan in ``plan.out`` (empty for a fresh folder or with --force).

    Refuses a folder holding a run of another plan, or a suite without a run record, unless ``plan.force``.
    """
    out = Path(plan.out)
    if plan.force:
        return {}
    saved = _read_json(out / "run.json")
    if saved is None:
        check_destination(out / "suites" / suite_name(plan.model), force=False)
        return {}
    before = {k: v for k, v in saved.items() if k not in NOT_KEYED}
    if before != _plan_key(plan):
        now = _plan_key(plan)
        diff = ", ".join(f"{k} {before.get(k)!r} (now {now.get(k)!r})" for k in now if before.get(k) != now[k])
        raise AdvdlaError(f"{out} holds a run with other settings ({diff}): pass --force to replace it, or choose "
                          f"another --out")
    record = _read_json(out / STAGES_FILE) or {}
    return dict(record.get("done", {})) if record.get("plan") == _plan_key(plan) else {}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _finished(name: str, state: RunState) -> dict[str, Any]:
    """What ``OUT/stages.json`` keeps of a finished stage: its time and note, and the analysis's target."""
    rec = {"seconds": state.outputs.seconds.get(name), "note": state.outputs.notes.get(name, "")}
    if name == "analysis":
        rec["target"] = state.target.name
    return rec


def _load_stage(name: str, plan: RunPlan, state: RunState, rec: dict[str, Any]) -> None:
    """A finished stage's outputs read back from OUT, as the next stages need them."""
    out = state.out
    state.outputs.notes[name] = f"resumed ({rec['seconds']} s before): {rec['note']}"
    if name == "analysis":
        state.target = parse_component(rec["target"], state.bridge.cfg)
        state.outputs.paths["analysis"] = out / "analysis.json"
    elif name == "search":
        state.docs = split_documents(TokenWindows(load_corpus(), state.bridge.tokenizer), seed=plan.seed)
        state.search = {split: read_search(out / "search" / split) for split in ("dev", "test")
                        if (out / "search" / split).is_dir()}
        state.outputs.paths["search"] = out / "search"
    elif name == "suite":
        state.suite = state.outputs.paths["suite"] = out / "suites" / suite_name(plan.model)
    elif name == "scores":
        state.records = read_records(out / "results" / "dev.json")
        state.outputs.paths["results"] = out / "results" / "dev.json"
        suite = load_suite(state.suite)
        state.outputs.notes["rows"] = (f"the dev split's {len(suite.examples(split='dev'))} examples: "
                                       f"{rows_by_source(suite.manifest, 'dev')}")
    elif name == "leaderboard":
        state.outputs.paths["leaderboard"] = out / "leaderboard"
        state.outputs.paths["leaderboard_md"] = out / "leaderboard" / "LEADERBOARD.md"


# ------------------------------------------------------------------------------------------------ stages


def stage_model(plan: RunPlan, state: RunState, report: Report) -> None:
    report(f"loading {plan.model} (the first use fetches and converts it)")
    state.bridge = load_model(plan.model, device=plan.device)
    weights = state.bridge.advdla_card.weights_fingerprint
    if plan.shipped != "none":  # planning checked the weights the registry promises; these are the loaded ones
        problem = suite_fit(read_manifest(Path(plan.shipped)), plan.model, seq_len=plan.seq_len, weights=weights)
        if problem:
            raise AdvdlaError(f"the shipped suite {plan.shipped} {problem}: pass --shipped none, or rebuild the "
                              f"suite on this model")
    state.outputs.notes["model"] = weights[:12]


def stage_analysis(plan: RunPlan, state: RunState, report: Report) -> None:
    """A small erasure analysis; its most overrated head (DLA - TE, with a downstream reader) is the search target."""
    bridge = state.bridge
    tokens, resamples = sample_prompts(
        bridge, n=plan.prompts, seq_len=plan.seq_len, resamples=plan.analysis_resamples, seed=plan.seed
    )
    analysis = analyze(
        bridge, tokens, resamples, n_writers=1, overrated_top=plan.overrated_top, seed=plan.seed, step=report
    )
    write_json_atomic(state.out / "analysis.json", analysis.to_dict())
    state.outputs.paths["analysis"] = state.out / "analysis.json"
    ranked = rank_targets(bridge, tokens, resamples, top=plan.overrated_top)
    if not len(ranked):
        raise AdvdlaError(
            "the analysis found no attention head that a later component reads: this model has "
            "nothing for DLA to be wrong about"
        )
    row = ranked.iloc[0]
    state.target = parse_component(row["component"], bridge.cfg)
    state.outputs.notes["analysis"] = (
        f"{len(analysis.writers)} writers; target {state.target}: DLA {row['dla']:.2f}, "
        f"TE {row['te']:.2f} (means over prompts)"
    )


def suite_name(model: str) -> str:
    """The run's suite name: the model's, made folder-safe, plus ``-run``."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(model).name) + "-run"


def stage_search(plan: RunPlan, state: RunState, report: Report, progress: Progress) -> None:
    """One short search per split, each kept off the other split's documents; a split's search is extended (its
    study resumes with twice the trials, at most twice) while it has too few verified examples."""
    windows = TokenWindows(load_corpus(), state.bridge.tokenizer)
    state.docs = split_documents(windows, seed=plan.seed)
    for split, n in (("dev", plan.n_dev), ("test", plan.n_test)):
        if n == 0:  # with a shipped suite the run scores dev only: no test search
            continue
        other = state.docs["test" if split == "dev" else "dev"]
        config = SearchConfig(target=state.target.name, trials=plan.trials, batch=plan.batch,
                              resamples=plan.search_resamples, seq_len=plan.seq_len, seed=plan.seed + len(split),
                              max_examples=3 * n, max_verify=n + 6, seed_contexts=64,  # the truth rejects some
                              thresholds=Thresholds(**dict(plan.thresholds)),
                              n_base=plan.n_base, pool_size=plan.pool_size, verify_resamples=plan.verify_resamples,
                              exclude_docs=tuple(sorted(other)))
        state.search[split] = _search_until(state, config, n, state.out / "search" / split, report, progress)
    state.outputs.paths["search"] = state.out / "search"
    found = {s: len(verified_examples(r.examples)) for s, r in state.search.items()}
    state.outputs.notes["search"] = (" + ".join(f"{n} {s}" for s, n in found.items()) +
                                     f" verified adversarial examples for {state.target}")


def _search_until(state: RunState, config: SearchConfig, n: int, out: Path, report: Report,
                  progress: Progress) -> SearchResult:
    for attempt in range(3):
        result = run_search(state.bridge, config, out_dir=out, progress=progress)
        found = len(verified_examples(result.examples))
        if found >= n or (found >= 1 and attempt > 0) or attempt == 2:
            break
        report(f"{found} verified examples after {config.trials} trials: extending the search")
        config = dataclasses.replace(config, trials=2 * config.trials)
    if found == 0:
        report(f"the search found no verified adversarial example for {state.target} in {config.trials} trials: "
               f"this split has natural controls only (another --seed searches elsewhere)")
    return result


def stage_suite(plan: RunPlan, state: RunState, report: Report, progress: Progress) -> None:
    """A small suite from the searches' examples (no second search), then verified on the model."""
    found = {s: len(verified_examples(r.examples)) for s, r in state.search.items()}
    # the truth (fresh resamples) rejects some verified examples: the build keeps as many as hold (up_to)
    n_dev, n_test = (max(1, min(n, found.get(s, 0))) for s, n in (("dev", plan.n_dev), ("test", plan.n_test)))
    panel, imported = _panel_and_imported(plan, state)
    sc = state.search["dev"].summary["config"]
    cfg = SuiteConfig(name=suite_name(plan.model), model=plan.model, seq_len=plan.seq_len, seed=plan.seed,
                      description=f"a small suite made by `advdla run` on {plan.model}", targets=[state.target.name],
                      search=SearchBudget(trials=sc["trials"], batch=sc["batch"], sampler=sc["sampler"],
                                          objective=sc["objective"]),
                      resamples=plan.resamples, method_resamples=plan.method_resamples,
                      thresholds=dict(plan.thresholds),
                      panel=panel, splits=SplitSizes(n_dev=n_dev, n_test=n_test, n_natural=plan.n_natural))
    dest = state.out / "suites" / cfg.name
    # a suite in OUT whose stage is not recorded as finished was written by this run's plan (check_out): rebuilt
    build_suite(cfg, dest, bridge=state.bridge, find=_reuse(state), force=plan.force or dest.exists(),
                progress=progress, up_to=True, imported=imported)
    report("verifying the suite (hashes, fingerprint chain, one example re-derived)")
    verify_suite(dest, sample=1, bridge=state.bridge, seed=plan.seed)
    state.suite = dest
    state.outputs.paths["suite"] = dest
    manifest = load_suite(dest).manifest
    state.outputs.notes["suite"] = "; ".join(f"{split}: {rows_by_source(manifest, split)}" for split in ("dev", "test"))


def _panel_and_imported(plan: RunPlan, state: RunState) -> tuple[PanelPolicy, Any]:
    """The run's panel policy and the shipped suite's dev examples cut to it (None without a shipped suite).

    Without one: every head and MLP up to ``max_full`` of them, else a screened panel of ``panel_size``. With one:
    every head and MLP from ``late_layers`` before the earliest target (the run's or the shipped suite's) on.
    """
    if plan.shipped == "none":
        return PanelPolicy(max_full=plan.max_full, size=plan.panel_size, screen_resamples=1), None
    cfg = state.bridge.cfg
    targets = [state.target, *(parse_component(t, cfg) for t in read_manifest(Path(plan.shipped))["targets"])]
    first = max(0, min(t.layer for t in targets) - plan.late_layers)
    panel = PanelPolicy(max_full=cfg.n_layers * (cfg.n_heads + 1), size=plan.panel_size, screen_resamples=1,
                        min_layer=first)
    return panel, import_examples(plan.shipped, state.bridge, split="dev", policy=panel, seq_len=plan.seq_len,
                                  max_per_kind=plan.shipped_max)


def rows_by_source(manifest: dict[str, Any], split: str) -> str:
    """Where a split's rows come from, from the suite's manifest: the search's (per mechanism) and the corpus's."""
    counts, mech = manifest["splits"][split], manifest.get("mechanisms", {}).get(split, {})
    per = ", ".join(f"{n} {m}" for m, n in sorted(mech.items()) if n)
    build = manifest.get("build", {}).get(split, {})
    scanned, shipped = build.get("natural_windows_scanned"), build.get("imported")
    of = f" of {scanned} scanned" if scanned is not None else ""
    n_adv, n_nat = counts["adversarial"], counts["natural"]
    if shipped:
        n_adv, n_nat = n_adv - shipped["adversarial"], n_nat - shipped["natural"]
    line = f"{n_adv} adversarial from the {split} search + {n_nat} natural corpus windows{of}"
    if shipped:
        line += (f" + {shipped['adversarial']} adversarial and {shipped['natural']} natural from the shipped "
                 f"{shipped['suite']} v{shipped['version']} ({shipped['fingerprint'][:12]})")
    return f"{line}; adversarial by mechanism: {per or 'none'}"


def _reuse(state: RunState) -> Callable[..., Any]:
    """A suite-build candidate finder that hands over each split's search examples instead of searching again
    (the split is the one whose documents the build does not exclude)."""

    def find(bridge: Any, target: Component, *, exclude_docs: set[int], **_: Any) -> tuple[list[Any], dict[str, Any]]:
        split = "dev" if set(exclude_docs) == state.docs["test"] else "test"
        if split not in state.search:  # no search for this split (a run with a shipped suite: dev only)
            return [], {"engine": "none: this split was not searched"}
        return candidates_from_search(state.search[split], target.name, engine="advdla.search.run_search (advdla run)")

    return find


def stage_scores(plan: RunPlan, state: RunState, report: Report, progress: Progress) -> None:
    """Every built-in method (or the plan's list) on the suite's dev split; one result record per method."""
    suite = load_suite(state.suite)
    examples = suite.examples(split="dev")
    names = (
        [n for n, spec in available_methods().items() if spec.source == "builtin"]
        if plan.methods == "all"
        else resolve_methods(plan.methods)
    )
    records = score_suite(
        state.bridge,
        suite.manifest,
        examples,
        names,
        split="dev",
        k=3,
        seed=plan.seed,
        device=plan.device,
        params=plan.params(),
        warn=lambda msg: report(f"skipped: {msg}"),
        progress=progress,
    )
    if not records:
        raise AdvdlaError("every method failed on the suite: see the lines above")
    write_records(state.out / "results" / "dev.json", records)
    state.records = records
    state.outputs.paths["results"] = state.out / "results" / "dev.json"
    state.outputs.notes["scores"] = f"{len(records)} methods on {len(examples)} dev examples"
    state.outputs.notes["rows"] = f"the dev split's {len(examples)} examples: {rows_by_source(suite.manifest, 'dev')}"


def stage_leaderboard(state: RunState) -> None:
    board = state.out / "leaderboard"
    for record in state.records:
        add_record(record, board, suites_dir=state.out / "suites")
    state.outputs.paths["leaderboard"] = board
    state.outputs.paths["leaderboard_md"] = write_markdown(board, suites_dir=state.out / "suites")
