"""The run's plan: every size ``advdla run`` uses and the shipped suite it adds, decided before any stage runs.

Context: a plan is plain data (saved as ``OUT/run.json``), so that a re-run into the same folder can tell whether it
continues the same run (:mod:`advdla.pipeline.resume`). Everything that can be known without running a stage is
checked here: the methods' names, whether a shipped suite fits the model (its name, prompt length and the weights
fingerprint the registry says the model loads), the prompt length on a small-context model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advdla.errors import AdvdlaError
from advdla.methods import resolve_methods
from advdla.models import expected_weights
from advdla.suites.imported import choose_shipped, suite_fit
from advdla.suites.store import read_manifest

__all__ = ["RunPlan", "plan_run", "fitting_seq_len", "suite_name", "STAGES", "SUITES_DIR"]

STAGES = ("model", "analysis", "search", "suite", "scores", "leaderboard")
# below this a prompt leaves the search's context manipulations (truncation, insertions, repeats) almost no room
MIN_RUN_SEQ_LEN = 8
SUITES_DIR = Path(__file__).resolve().parents[2] / "suites"  # the project's shipped suites (a source checkout)


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
    # the screens' dtype (advdla.precision): the search loop and the suite's natural scan run on a bf16 copy of the
    # model, every example is re-verified and every truth and score computed in fp32; fp32 screens in fp32 too
    precision: str = "bf16"
    limit: int | None = None  # scores: at most this many dev examples (a smoke run); None: all of them
    notes: tuple[str, ...] = ()  # what planning decided that the user should hear (a shipped suite skipped, ...)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def params(self) -> dict[str, dict[str, Any]]:
        return {name: dict(opts) for name, opts in self.method_params}


def plan_run(
    model: str, *, out: str, quick: bool = False, seed: int = 0, force: bool = False, methods: str = "all",
    device: str = "cpu", shipped: str = "auto", seq_len: int | None = None, limit: int | None = None,
    precision: str = "bf16",
) -> RunPlan:
    """The default sizes, or the ``--quick`` ones (about half the work of every stage).

    ``seq_len``: the prompts' length, where the default (16) does not fit the model (:func:`fitting_seq_len`).

    ``shipped``: a suite folder whose dev examples join the run's, ``auto`` (the default: of the suites of
    ``model`` with the run's prompt length in the project's ``suites/`` folder, the one with the most dev
    adversarial examples, if any) or ``none``.
    """
    if methods != "all":
        resolve_methods(methods)  # a typo stops here, before any work
    plan = RunPlan(model=model, out=out, seed=seed, force=force, methods=methods, device=device, limit=limit,
                   precision=precision)
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



def suite_name(model: str) -> str:
    """The run's suite name: the model's, made folder-safe, plus ``-run``."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(model).name) + "-run"


def fitting_seq_len(bridge: Any) -> int:
    """The run's prompt length on ``bridge``: the default, or the largest that fits the model's context with the
    search's pre-screen windows of twice that length (refused below :data:`MIN_RUN_SEQ_LEN`)."""
    fitted = min(RunPlan.seq_len, int(bridge.cfg.n_ctx) // 2)
    if fitted < MIN_RUN_SEQ_LEN:
        raise AdvdlaError(f"the model's context of {bridge.cfg.n_ctx} positions is too short for a run: its prompts "
                          f"need at least {MIN_RUN_SEQ_LEN} tokens and the search's pre-screen windows twice that "
                          f"({2 * MIN_RUN_SEQ_LEN} positions); use a model with a context of {2 * MIN_RUN_SEQ_LEN} or "
                          f"more")
    return fitted

