"""The stages of ``advdla run``, one function each: what it computes, where it writes, what it hands on.

Context: each stage reads the plan and what earlier stages left in :class:`RunState`, calls into one package
(models, analysis, search, suites, scoring, leaderboard), writes its outputs into ``OUT`` and sets its fields of the
state. :func:`load_stage` reads a finished stage's outputs back instead, for a resumed run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advdla.analysis import analyze, sample_prompts
from advdla.atomic import write_json_atomic
from advdla.commands.score import smoke_subset
from advdla.components import Component, parse_component
from advdla.corpus import TokenWindows, load_corpus, split_documents
from advdla.criteria import Thresholds
from advdla.errors import AdvdlaError
from advdla.leaderboard import add_record, write_markdown
from advdla.methods import available_methods, resolve_methods
from advdla.models import load_model
from advdla.pipeline.plan import RunPlan, suite_name
from advdla.progress import Progress
from advdla.scoring import ResultRecord, read_records, score_suite, write_records
from advdla.scoring.ceiling import ceiling_record
from advdla.search import SearchConfig, SearchResult, read_search, run_search, verified_examples
from advdla.suites import PanelPolicy, SuiteConfig, build_suite, load_suite, verify_suite
from advdla.suites.build import candidates_from_search
from advdla.suites.config import SearchBudget, SplitSizes
from advdla.suites.imported import import_examples, suite_fit
from advdla.suites.store import read_manifest

__all__ = ["RunOutputs", "RunState", "Report", "stage_model", "stage_analysis", "stage_search", "stage_suite",
           "stage_scores", "stage_leaderboard", "load_stage", "rows_by_source"]

Report = Callable[[str], None]


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



def load_stage(name: str, plan: RunPlan, state: RunState, rec: dict[str, Any]) -> None:
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
        state.records = read_records(out / "results" / "scores.json")
        state.outputs.paths["results"] = out / "results" / "scores.json"
        splits = [s for s in ("dev", "test") if any(r.split == s for r in state.records)]
        state.outputs.notes["rows"] = _rows_note(load_suite(state.suite).manifest, splits)
    elif name == "leaderboard":
        state.outputs.paths["leaderboard"] = out / "leaderboard"
        state.outputs.paths["leaderboard_md"] = out / "leaderboard" / "LEADERBOARD.md"



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
    """A small erasure analysis; its first auto target (the head or MLP whose direct effect later components undo
    most, :func:`advdla.analysis.rank_targets` on every analysed prompt) is the search target."""
    bridge = state.bridge
    tokens, resamples = sample_prompts(
        bridge, n=plan.prompts, seq_len=plan.seq_len, resamples=plan.analysis_resamples, seed=plan.seed
    )
    analysis = analyze(bridge, tokens, resamples, n_writers=1, overrated_top=plan.overrated_top,
                       te_prompts=plan.prompts, seed=plan.seed, step=report)
    write_json_atomic(state.out / "analysis.json", analysis.to_dict())
    state.outputs.paths["analysis"] = state.out / "analysis.json"
    ranked = analysis.targets
    if not ranked:
        raise AdvdlaError(
            "the analysis found no attention head that a later component reads: this model has "
            "nothing for DLA to be wrong about"
        )
    row = ranked[0]
    state.target = parse_component(row["component"], bridge.cfg)
    state.outputs.notes["analysis"] = (
        f"{len(analysis.writers)} writers; target {state.target}: DLA {row['dla']:.2f}, "
        f"TE {row['te']:.2f} (means over prompts)"
    )



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
                              exclude_docs=tuple(sorted(other)), precision=plan.precision)
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
    build_suite(cfg, dest, bridge=state.bridge, find=search_handover(state), force=plan.force or dest.exists(),
                progress=progress, up_to=True, imported=imported, precision=plan.precision)
    report("verifying the suite (hashes, fingerprint chain, one example re-derived)")
    verify_suite(dest, sample=1, bridge=state.bridge, seed=plan.seed)
    state.suite = dest
    state.outputs.paths["suite"] = dest
    manifest = load_suite(dest).manifest
    state.outputs.notes["suite"] = "; ".join(f"{split}: {rows_by_source(manifest, split)}" for split in ("dev", "test"))


def _panel_and_imported(plan: RunPlan, state: RunState) -> tuple[PanelPolicy, Any]:
    """The run's panel policy and the shipped suite's dev and test examples cut to it (None without a shipped suite:
    the run's test split then holds its own test search's rows; with one, the shipped test rows are its test split,
    so the verdict can ask whether a dev result replicates). Both suites cut the corpus into splits with the same
    seeded rule, so with the same seed the shipped test rows come from the run's test documents.

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
    return panel, [import_examples(plan.shipped, state.bridge, split=split, policy=panel, seq_len=plan.seq_len,
                                   max_per_kind=plan.shipped_max) for split in ("dev", "test")]


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


def search_handover(state: RunState) -> Callable[..., Any]:
    """A suite-build candidate finder that hands over each split's search examples instead of searching again
    (the split is the one whose documents the build does not exclude)."""

    def find(bridge: Any, target: Component, *, exclude_docs: set[int], **_: Any) -> tuple[list[Any], dict[str, Any]]:
        split = "dev" if set(exclude_docs) == state.docs["test"] else "test"
        if split not in state.search:  # no search for this split (a run with a shipped suite: dev only)
            return [], {"engine": "none: this split was not searched"}
        return candidates_from_search(state.search[split], target.name, engine="advdla.search.run_search (advdla run)")

    return find


def stage_scores(plan: RunPlan, state: RunState, report: Report, progress: Progress) -> None:
    """Every built-in method (or the plan's list) on the suite's dev and test splits (the verdict needs both: a claim
    must replicate), plus the split-half noise ceiling; one result record per method and split."""
    suite = load_suite(state.suite)
    names = (
        [n for n, spec in available_methods().items() if spec.source == "builtin"]
        if plan.methods == "all"
        else resolve_methods(plan.methods)
    )
    records, counts = [], {}
    for split in ("dev", "test"):
        examples = every = suite.examples(split=split)
        if plan.limit:
            examples = smoke_subset(every, plan.limit)
        if not examples:
            continue
        counts[split] = f"{len(examples)} {split}" + (f" (--limit, of {len(every)})" if len(examples) < len(every)
                                                      else "")
        records += score_suite(state.bridge, suite.manifest, examples, names, split=split, k=3, seed=plan.seed,
                               device=plan.device, params=plan.params(), warn=lambda msg: report(f"skipped: {msg}"),
                               progress=progress)
        records.append(ceiling_record(state.bridge, suite.manifest, examples, split=split, seed=plan.seed,
                                      device=plan.device, progress=progress))
    if not records:
        raise AdvdlaError("every method failed on the suite: see the lines above")
    write_records(state.out / "results" / "scores.json", records)
    state.records = records
    state.outputs.paths["results"] = state.out / "results" / "scores.json"
    state.outputs.notes["scores"] = (f"{len(names)} methods and the split-half ceiling on "
                                     + " and ".join(counts.values()) + " examples")
    state.outputs.notes["rows"] = _rows_note(suite.manifest, list(counts))


def _rows_note(manifest: Mapping[str, Any], splits: list[str]) -> str:
    """Where each scored split's rows came from (the same words on a first run and on a resumed one)."""
    return "; ".join(f"{s}: {rows_by_source(manifest, s)}" for s in splits)


def stage_leaderboard(state: RunState) -> None:
    board = state.out / "leaderboard"
    for record in state.records:
        add_record(record, board, suites_dir=state.out / "suites")
    state.outputs.paths["leaderboard"] = board
    state.outputs.paths["leaderboard_md"] = write_markdown(board, suites_dir=state.out / "suites")

