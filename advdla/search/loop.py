"""The search loop: an Optuna study, asked and told in batches, stored so it resumes and can be shared.

Context: each trial is one candidate prompt (:mod:`advdla.search.space`). The loop asks the sampler for B
trials, builds B prompts, scores them in one batched evaluation (:class:`~advdla.search.evaluate.Evaluator`),
and tells the B values back (:func:`run_batch`), until the study holds ``trials`` complete trials
(:func:`run_loop`). Which sampler, and whether it also runs the local search, is :data:`~advdla.search.samplers.
SAMPLERS`'s to say.

Storage and resume: the sampler works on an in-memory mirror of the stored study (:class:`StoredStudyMirror`),
and each finished trial is stored whole, in one transaction, so the storage only ever holds COMPLETE trials: a
worker killed mid-batch loses its in-flight candidates and nothing else, and a restart with the same arguments
continues the same study (same history, so the same next batch). Trial numbers are assigned by the storage, so
workers never share one. The budget is ``trials`` COMPLETE trials in the study, across all workers: a worker
stores a finished batch only up to what is still free and drops the rest (``surplus_dropped``), so the study
ends with ``trials`` complete trials (two workers storing in the same instant can overshoot by that race).
"""

from __future__ import annotations

import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, Trial, TrialState

from advdla.criteria import mechanism
from advdla.progress import Progress, Step, silent
from advdla.search.config import SearchConfig
from advdla.search.evaluate import Evaluator, Scores
from advdla.search.local import mutations, unedited
from advdla.search.objectives import DIRECTIONS, constraints, is_hit, multi_objectives, scalar_objective
from advdla.search.samplers import SAMPLERS
from advdla.search.space import SearchSpace, build_prompt, suggest

__all__ = ["WorkerStats", "StoredStudyMirror", "run_loop", "run_batch", "score_record", "reporter"]

CONSTRAINT_NAMES = ("rank_over_top_k", "margin_shortfall", "dla_share_shortfall")  # objectives.constraints' columns


@dataclass
class WorkerStats:
    """What this worker stored and dropped, the study-wide counts it last saw, and where its time went."""

    told: int = 0  # trials this worker stored
    surplus: int = 0  # finished trials it dropped because the budget was full
    study_complete: int = 0  # complete trials in the study (all workers), at its last read
    study_examples: int = 0  # ... of which adversarial for the objective
    best: float = float("nan")  # best scalar objective value in the study (nan: none, or multi-objective)
    t_sampler: float = 0.0  # seconds asking and telling the sampler
    t_eval: float = 0.0  # seconds scoring candidates
    t_storage: float = 0.0  # seconds reading and writing the storage


class StoredStudyMirror:
    """An in-memory copy of the stored study that the sampler works on.

    Why: a stored trial costs one storage transaction per parameter when suggested through the storage
    (0.1-0.7 s per trial of 20 parameters on SQLite here, more than scoring it). So trials are sampled on
    this mirror, and each finished trial is written to the storage whole, in one transaction
    (``Study.add_trial``), which also assigns its study-wide number. A worker killed mid-batch leaves
    nothing half-written: its in-flight candidates were never stored, and every stored trial is complete.
    Before each batch the mirror takes in the trials other workers (or earlier runs) completed.
    """

    def __init__(self, study: optuna.Study, config: SearchConfig):
        self.study, self.config = study, config
        self.local = optuna.create_study(directions=DIRECTIONS[config.mode])
        self.uids: set[str] = set()

    def sync(self) -> list[FrozenTrial]:
        """Take in stored complete trials not yet mirrored; return all stored complete trials."""
        stored = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        for t in stored:
            uid = t.user_attrs.get("uid")
            if uid not in self.uids:
                self.local.add_trial(t)
                self.uids.add(uid)
        return stored

    def ask(self, n: int, salt: int, space: SearchSpace) -> list[Trial]:
        """``n`` trials from a sampler seeded by the seed and the history size: a resumed run replays the same batch.

        With ``tpe`` (a sampler with ``local_search``), the pre-screened contexts come first, unedited
        (:func:`~advdla.search.local.unedited`, up to ``seed_contexts``); then the first ``exploit`` share of each
        batch are mutations of the best hits (before the first hit, of the best trials;
        :func:`~advdla.search.local.mutations`), enqueued so that the same ask hands them out; the sampler
        samples the rest.
        """
        spec = SAMPLERS.get(self.config.sampler)
        seed = self.config.seed * 1_000_003 + len(self.local.trials) + salt
        self.local.sampler = spec.build(seed, self.config.batch)
        if spec.local_search:
            done = self.local.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            budget = min(self.config.seed_contexts, self.config.trials // 4)  # at most a quarter of the trials
            plain = unedited(space, done, min(n, budget - len(done)))
            near = mutations(done, round((n - len(plain)) * self.config.exploit), random.Random(seed), space=space)
            for params in plain + near:
                self.local.enqueue_trial(params)
        return [self.local.ask() for _ in range(n)]

    def finish(self, trials: list[Trial], values: list[list[float]], records: list[dict]) -> list[FrozenTrial]:
        """Tell the mirror; return the finished frozen trials, each with a uid and its worker."""
        worker = {"host": socket.gethostname(), "pid": os.getpid()}
        out = []
        for trial, value, rec in zip(trials, values, records):
            uid = uuid.uuid4().hex
            for k, v in (("scores", rec), ("uid", uid), ("worker", worker)):
                trial.set_user_attr(k, v)
            if self.config.mode == "multi":
                for key, c in zip(CONSTRAINT_NAMES, rec["constraints"]):
                    trial.set_constraint(key, c)  # NSGA-II: <= 0 is feasible
            # Study.tell returns the finished trial as a deep copy: about 0.5 ms per trial more than reading the
            # mirror's storage directly (/tmp timing, 400 trials of this space), nothing beside a trial's scoring
            out.append(self.local.tell(trial, value))
            self.uids.add(uid)
        return out


def _counts(stored: list[FrozenTrial], mode: str) -> tuple[int, int, float]:
    """(complete trials, adversarial among them, best scalar objective or nan) across all workers."""
    examples = sum(bool(t.user_attrs.get("scores", {}).get("adversarial")) for t in stored)
    best = max((t.values[0] for t in stored), default=float("nan")) if mode == "scalar" else float("nan")
    return len(stored), examples, best


def score_record(s: Scores, i: int, config: SearchConfig, hit: bool) -> dict[str, Any]:
    """One candidate's scores as stored with its trial; ``adversarial``: a hit for the study's objective."""
    rec = {"tokens": s.tokens[i].tolist(), "t1": int(s.t1[i]), "t2": int(s.t2[i]), "ld": float(s.ld[i]),
           "dla": float(s.dla[i]), "rank": int(s.rank[i]), "te_mean": float(s.te_mean[i]),
           "te_std": float(s.te_std[i]), "de_mean": float(s.de_mean[i]), "de_std": float(s.de_std[i]),
           "dla_share": float(s.dla_share[i]), "te_share": float(s.te_share[i]), "de_share": float(s.de_share[i]),
           "naturalness": float(s.naturalness[i]), "constraints": constraints(s, config.thresholds)[i].tolist(),
           "adversarial": hit}
    rec["mechanism"] = mechanism(rec["dla"], rec["de_mean"], rec["te_mean"], rec["ld"], config.thresholds,
                                 rank=rec["rank"])
    return rec


def _score(evaluator: Evaluator, prompts: torch.Tensor, config: SearchConfig) -> tuple[torch.Tensor, list[dict]]:
    """The values the sampler is told ([batch, 1] scalar or [batch, 3] multi) and each candidate's stored record."""
    scores = evaluator(prompts)
    if config.mode == "scalar":
        values = scalar_objective(scores, config.thresholds, config.objective)[:, None]
    else:
        values = multi_objectives(scores, config.objective)
    adv = is_hit(scores, config.thresholds, config.objective)
    return values, [score_record(scores, i, config, bool(adv[i])) for i in range(len(prompts))]


def run_batch(mirror: StoredStudyMirror, n: int, space: SearchSpace, evaluator: Evaluator, config: SearchConfig,
              salt: int, stats: WorkerStats) -> None:
    """Ask n, build and score n prompts in one evaluation, tell; store what still fits the budget."""
    t0 = time.perf_counter()
    trials = mirror.ask(n, salt, space)
    prompts = torch.stack([build_prompt(suggest(t, space), space) for t in trials])
    t1 = time.perf_counter()
    values, records = _score(evaluator, prompts, config)
    t2 = time.perf_counter()
    frozen = mirror.finish(trials, values.tolist(), records)
    if any(f.state.name != "COMPLETE" for f in frozen):  # never spin on trials that cannot complete
        raise RuntimeError(f"optuna refused the values of trial {frozen[0].number} ({values[0].tolist()})")
    t3 = time.perf_counter()
    free = config.trials - len(mirror.sync())  # another worker may have filled the budget meanwhile
    for f in frozen[:max(free, 0)]:
        mirror.study.add_trial(f)
    stats.surplus += max(0, len(frozen) - max(free, 0))
    stats.told += min(len(frozen), max(free, 0))
    stats.t_sampler += (t1 - t0) + (t3 - t2)
    stats.t_eval += t2 - t1
    stats.t_storage += time.perf_counter() - t3


def run_loop(study: optuna.Study, space: SearchSpace, evaluator: Evaluator, config: SearchConfig, salt: int,
             bar: Callable[[WorkerStats], None]) -> WorkerStats:
    """Batches until the study holds ``config.trials`` complete trials (or ``max_examples`` adversarial ones);
    ``salt`` offsets the sampler's seed (a worker's pid on a shared study, so workers explore apart)."""
    stats, mirror = WorkerStats(), StoredStudyMirror(study, config)
    while True:
        t0 = time.perf_counter()
        stats.study_complete, stats.study_examples, stats.best = _counts(mirror.sync(), config.mode)
        stats.t_storage += time.perf_counter() - t0
        bar(stats)
        enough = config.max_examples and stats.study_examples >= config.max_examples
        if stats.study_complete >= config.trials or enough:
            return stats
        n = min(config.batch, config.trials - stats.study_complete)
        run_batch(mirror, n, space, evaluator, config, salt, stats)


def reporter(progress: Progress | None, config: SearchConfig) -> Callable[[WorkerStats], None]:
    """The loop's per-batch report as a progress :class:`~advdla.progress.Step`."""
    tick = progress or silent

    def report(stats: WorkerStats) -> None:
        best = "" if stats.best != stats.best else f" · best {stats.best:.3f}"
        info = f"examples {stats.study_examples}{best}"
        tick(Step("search", done=stats.study_complete, total=config.trials, info=info))

    return report
