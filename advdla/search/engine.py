"""The search loop: an Optuna study, asked and told in batches, stored so it resumes and can be shared.

Context: each trial is one candidate prompt (:mod:`advdla.search.space`). The engine asks the study for B
trials, builds B prompts, scores them in one batched evaluation (:class:`~advdla.search.evaluate.Evaluator`),
and tells the B values back. Samplers: ``tpe`` (default; constant liar, so the trials of a batch and of
other workers that are still running are not proposed twice; half of each batch is one- or two-parameter
mutations of the best hit of each of the best contexts, or before the first hit of the best trials,
:func:`mutations`), ``random`` (the baseline: same space, no
model of it), ``nsga2`` (multi-objective: DLA share up, |TE| share down, naturalness up; its Pareto front
is kept).

Storage and resume: the study lives in an Optuna storage, by default ``sqlite:///OUT/study.db``; any RDB
URL (``postgresql://user:pw@host/db`` for workers on many machines) or ``journal:PATH`` (a journal file,
safe for several processes on one machine) works with ``--storage URL --study NAME``. The sampler works on
an in-memory mirror of the stored study (:class:`_Mirror`), and each finished trial is stored whole, in one
transaction, so the storage only ever holds COMPLETE trials: a worker killed mid-batch loses its in-flight
candidates and nothing else, and a restart with the same arguments continues the same study (same
history, so the same next batch). Trial numbers are assigned by the storage, so workers never share one.
The budget is ``trials`` COMPLETE trials in the study, across all workers: a worker stores a finished
batch only up to what is still free and drops the rest (``surplus_dropped``), so the study ends with
``trials`` complete trials (two workers storing in the same instant can overshoot by that race).

Every example written to ``examples.parquet`` is re-scored on the slow reference path and kept only if
it still passes the thresholds.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import sqlite3
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pandas as pd
import torch
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState
from sqlalchemy.exc import IntegrityError, OperationalError

from advdla.atomic import write_atomic, write_json_atomic
from advdla.attribution import check_context
from advdla.components import Component, all_components, is_downstream, parse_component
from advdla.corpus import TokenWindows, load_corpus
from advdla.criteria import Thresholds, mechanism
from advdla.erasure import auto_target
from advdla.errors import AdvdlaError, did_you_mean
from advdla.progress import Progress, Step, silent
from advdla.search.evaluate import Evaluator, Scores, verify
from advdla.search.objectives import (
    DIRECTIONS,
    check_objective,
    constraints,
    is_hit,
    multi_objectives,
    scalar_objective,
)
from advdla.search.space import MAX_SWAPS, WINDOWS_PER_BASE, SearchSpace, build_prompt, build_space, suggest
from advdla.search.storage import with_driver

__all__ = ["SearchConfig", "SearchResult", "run_search", "resolve_target", "open_storage", "SAMPLERS",
           "corpus_baseline", "verified_examples", "search_resamples", "verify_resamples", "slow_scores",
           "check_lengths", "space_for", "mutations", "read_search"]

SAMPLERS = ("tpe", "nsga2", "random")


@dataclass
class SearchConfig:
    """One search. Fields that shape the space (``SPACE_FIELDS``) must match when a stored study is resumed."""

    target: str = "auto"  # a component name, or auto: the first of erasure.rank_targets (compensated direct effect)
    objective: str = "compensation"  # compensation (DE - TE, DE real) | dla (DLA - TE) | baseline (DLA - DE)
    trials: int = 200  # the study stops when it holds this many COMPLETE trials (all workers together)
    batch: int = 16  # candidates asked, scored and told together
    sampler: str = "tpe"  # tpe | nsga2 (multi-objective) | random (baseline)
    resamples: int = 8  # R: TE is averaged over R fixed same-length corpus resamples
    seq_len: int = 24  # every candidate has exactly this many tokens
    seed: int = 0
    thresholds: Thresholds = field(default_factory=Thresholds)
    n_slots: int = 4  # free token slots
    pool_size: int = 96  # candidate tokens per slot
    n_gcg: int = 2  # gradient-ranked token swaps per candidate (GCG-style, per context and position; 0: none)
    exploit: float = 0.5  # tpe: share of each batch spent on one- or two-parameter mutations of the best trials
    seed_contexts: int = 32  # tpe: the study starts with this many pre-screened contexts unedited (best first;
    # at most a quarter of the trials)
    gcg_k: int = 16  # swap tokens ranked per (context, position)
    n_base: int = 64  # base corpus windows
    max_examples: int | None = None  # also stop once the study holds this many adversarial trials
    corpus: str = "builtin"
    max_verify: int = 32  # re-verify at most this many distinct candidates (best first) on the slow path
    verify_resamples: int = 8  # fresh resamples for the re-verification (not the ones the search optimised against)
    # Corpus documents the search must not touch (bases, spans, resamples): a suite's dev search excludes the test
    # split's documents and vice versa, so the two splits share no text by construction.
    exclude_docs: tuple[int, ...] = ()

    @property
    def mode(self) -> str:
        return "multi" if self.sampler == "nsga2" else "scalar"

    def space_key(self, model: str, target: str) -> dict[str, Any]:
        keys = ("resamples", "seq_len", "seed", "n_slots", "pool_size", "n_base", "corpus", "n_gcg", "gcg_k")
        key = {"model": model, "target": target, "mode": self.mode, "objective": self.objective,
               **{k: getattr(self, k) for k in keys},
               # the contexts are pre-screened for the target in the top k with LD > margin (space.prescreen_contexts)
               "prescreen": {"top_k": self.thresholds.top_k, "margin": self.thresholds.margin,
                             "windows_per_base": WINDOWS_PER_BASE, "exact": True}}
        if self.exclude_docs:  # a hash: the list can be long, and old studies (no exclusion) keep their key
            key["exclude_docs"] = hashlib.sha256(",".join(map(str, sorted(self.exclude_docs))).encode()).hexdigest()
        return key

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"exclude_docs": list(self.exclude_docs)}  # as JSON stores it


@dataclass
class SearchResult:
    """What a search found and how it went (``summary`` is what ``search.json`` holds)."""

    target: str
    examples: Any  # pandas DataFrame, one row per verified adversarial example
    summary: dict[str, Any]
    out_dir: Path


def validate(config: SearchConfig) -> None:
    """One clear line for each impossible setting."""
    if config.trials < 1:
        raise AdvdlaError(f"--trials must be at least 1, got {config.trials}: the search needs a budget")
    if not 0 <= config.exploit <= 1:
        raise AdvdlaError(f"--exploit must be between 0 and 1, got {config.exploit}")
    if config.n_gcg < 0 or config.gcg_k < 1:
        raise AdvdlaError(f"--n-gcg must be at least 0 and --gcg-k at least 1, got {config.n_gcg} and {config.gcg_k}")
    for name in ("batch", "resamples", "n_base", "pool_size", "verify_resamples"):
        if getattr(config, name) < 1:
            raise AdvdlaError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    if config.seq_len < 4:
        raise AdvdlaError(f"--seq-len must be at least 4, got {config.seq_len}")
    if config.sampler not in SAMPLERS:
        raise AdvdlaError(f"unknown sampler {config.sampler!r}: use one of {', '.join(SAMPLERS)}."
                          f"{did_you_mean(config.sampler, SAMPLERS)}")
    check_objective(config.objective)


def check_lengths(bridge: Any, config: SearchConfig) -> None:
    """Every length the search feeds the model fits its context: candidates and resamples (seq_len) and the
    pre-screen's windows (2 x seq_len). One line naming both numbers, before any forward."""
    what = f"search --seq-len {config.seq_len}"
    check_context(bridge, config.seq_len, f"{what} (candidates and resamples)")
    check_context(bridge, 2 * config.seq_len, f"{what} (pre-screen windows of 2 x {config.seq_len})", per_unit=2)


# ------------------------------------------------------------------------------------------------ target


def resolve_target(bridge: Any, name: str, windows: Any = None, *, seq_len: int = 24, seed: int = 0) -> Component:
    """Parse ``name`` (did-you-mean on a typo) or pick one with ``auto``; it must be patchable and have a reader."""
    if name == "auto":
        target = _auto_target(bridge, windows, seq_len=seq_len, seed=seed)
    else:
        target = parse_component(name, bridge.cfg)
    if target.kind not in ("head", "mlp"):
        raise AdvdlaError(f"target {target.name} cannot be searched: give an attention head (L<l>H<h>) or an MLP "
                          "(MLP<l>)")
    if not any(is_downstream(c, target) for c in all_components(bridge.cfg)):
        raise AdvdlaError(f"target {target.name} has no downstream component to erase what it writes, so DLA cannot "
                          f"overstate its effect: pick a component before the last layer (or a last-layer head)")
    return target


def _auto_target(bridge: Any, windows: Any, *, seq_len: int, seed: int, n: int = 16, r: int = 4) -> Component:
    """``auto``: :func:`advdla.erasure.auto_target` on ``n`` corpus windows and ``r`` resamples drawn with the seed."""
    tokens, docs = windows.sample(seq_len, n, seed=seed + 1000)
    resamples = windows.sample(seq_len, r, seed=seed + 1001, exclude=set(docs))[0]
    return auto_target(bridge, tokens, resamples)


# ----------------------------------------------------------------------------------------------- storage


def open_storage(url: str) -> Any:
    """An Optuna storage: an RDB URL (sqlite:///, postgresql://...) or ``journal:PATH``; one line on failure."""
    try:
        if url.startswith("journal:"):
            return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
        kwargs = {"creator": _sqlite_creator(url)} if url.startswith("sqlite:///") else {}
        return _rdb_storage(url, kwargs)
    except Exception as exc:  # bad URL, unreachable server, missing driver, unwritable path: all one line
        first = (str(exc).splitlines() or [""])[0][:200]
        raise AdvdlaError(f"cannot open storage {url!r} ({type(exc).__name__}: {first}); give a reachable RDB URL "
                          f"(sqlite:///PATH, postgresql://user:pw@host/db) or journal:PATH") from None


def _rdb_storage(url: str, engine_kwargs: dict[str, Any], tries: int = 5) -> Any:
    """RDBStorage, retried when another process is creating the same fresh schema at that moment.

    Two workers (or a worker and a reader) opening a new database together race on creating its tables and
    its schema-version row; the loser sees "already exists" (or a duplicate version row) and, a moment later,
    a complete schema it can simply use.
    """
    url = with_driver(url)
    for attempt in range(tries):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except (OperationalError, IntegrityError) as exc:
            racing = "already exists" in str(exc) or "alembic_version" in str(exc)
            if not racing or attempt == tries - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def _sqlite_creator(url: str) -> Any:
    """SQLite connections in WAL mode with a long lock timeout: several local workers can share the file, and a
    commit costs no fsync of the whole database (WAL + synchronous=NORMAL survives a killed process)."""
    path = url.removeprefix("sqlite:///")
    if not Path(path).parent.is_dir():
        raise FileNotFoundError(f"no directory {Path(path).parent}")

    def connect() -> Any:
        conn = sqlite3.connect(path, timeout=60, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    return connect


def _make_sampler(config: SearchConfig, seed: int) -> Any:
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(config.batch, 16))
    with warnings.catch_warnings():  # multivariate TPE is marked experimental; it models the parameters jointly
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True, multivariate=True,
                                          n_startup_trials=max(10, config.batch))


def _open_study(config: SearchConfig, storage: Any, study_name: str, key: dict[str, Any]) -> Any:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=study_name, directions=DIRECTIONS[config.mode],
                                load_if_exists=True)
    stored = study.user_attrs.get("advdla_space")
    if stored is None:
        study.set_user_attr("advdla_space", key)
    elif stored != key:
        diff = ", ".join(f"{k}={stored.get(k)!r} (now {v!r})" for k, v in key.items() if stored.get(k) != v)
        raise AdvdlaError(f"study {study_name!r} was created with {diff}: resume with the same arguments or use "
                          "another --study/--out")
    return study


# -------------------------------------------------------------------------------------------------- loop


@dataclass
class _Tally:
    """What this worker did, and the study-wide counts it last saw."""

    told: int = 0
    surplus: int = 0
    study_complete: int = 0
    study_examples: int = 0
    best: float = float("nan")
    t_sampler: float = 0.0
    t_eval: float = 0.0
    t_storage: float = 0.0
    batches: int = 0


class _Mirror:
    """An in-memory copy of the stored study that the sampler works on.

    Why: a stored trial costs one storage transaction per parameter when suggested through the storage
    (0.1-0.7 s per trial of 20 parameters on SQLite here, more than scoring it). So trials are sampled on
    this mirror, and each finished trial is written to the storage whole, in one transaction
    (``Study.add_trial``), which also assigns its study-wide number. A worker killed mid-batch leaves
    nothing half-written: its in-flight candidates were never stored, and every stored trial is complete.
    Before each batch the mirror takes in the trials other workers (or earlier runs) completed.
    """

    def __init__(self, study: Any, config: SearchConfig):
        self.study, self.config = study, config
        self.local = optuna.create_study(directions=DIRECTIONS[config.mode])
        self.uids: set[str] = set()

    def sync(self) -> list[Any]:
        """Take in stored complete trials not yet mirrored; return all stored complete trials."""
        stored = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        for t in stored:
            uid = t.user_attrs.get("uid")
            if uid not in self.uids:
                self.local.add_trial(t)
                self.uids.add(uid)
        return stored

    def ask(self, n: int, salt: int, space: SearchSpace) -> list[Any]:
        """``n`` trials from a sampler seeded by the seed and the history size: a resumed run replays the same batch.

        With ``tpe``, the pre-screened contexts come first, unedited (:func:`unedited`, up to ``seed_contexts``);
        then the first ``exploit`` share of each batch are mutations of the best hits (before the first hit, of the
        best trials; :func:`mutations`), enqueued so that the same ask hands them out; TPE samples the rest.
        """
        seed = self.config.seed * 1_000_003 + len(self.local.trials) + salt
        self.local.sampler = _make_sampler(self.config, seed)
        if self.config.sampler == "tpe":
            done = self.local.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            budget = min(self.config.seed_contexts, self.config.trials // 4)  # at most a quarter of the trials
            plain = unedited(space, done, min(n, budget - len(done)))
            near = mutations(done, round((n - len(plain)) * self.config.exploit), random.Random(seed), space=space)
            for params in plain + near:
                self.local.enqueue_trial(params)
        return [self.local.ask() for _ in range(n)]

    def finish(self, trials: list[Any], values: Any, records: list[dict]) -> list[Any]:
        """Tell the mirror; return the finished frozen trials, each with a uid and its worker."""
        worker = {"host": socket.gethostname(), "pid": os.getpid()}
        out = []
        for trial, value, rec in zip(trials, values, records):
            uid = uuid.uuid4().hex
            for k, v in (("scores", rec), ("uid", uid), ("worker", worker)):
                trial.set_user_attr(k, v)
            if self.config.mode == "multi":
                for key, c in zip(("rank_over_top_k", "margin_shortfall", "dla_share_shortfall"), rec["constraints"]):
                    trial.set_constraint(key, c)  # NSGA-II: <= 0 is feasible
            self.local.tell(trial, value)
            self.uids.add(uid)
            out.append(self.local._storage.get_trial(trial._trial_id))
        return out


def unedited(space: SearchSpace, trials: list[Any], n: int) -> list[dict[str, Any]]:
    """Up to ``n`` parameter sets that leave a context as it is (no insertion, repetition, swap, slot or GCG swap),
    for the best pre-screened contexts not yet tried that way.

    Why: the pre-screen picks contexts where the target already leads DLA's ranking with a large share of LD, and
    on a real model a few of them are hits as they stand, while a draw from the whole space edits about 8 of 16
    tokens and almost always loses the ranking (SmolLM2: 4% of draws keep the target in DLA's top 3). Starting from
    them gives the local search (:func:`mutations`) hits and near misses to climb from in its first batches.
    """
    none = {k: v for k, v in _plain(space, 0).items() if k != "context"}
    tried = {t.params.get("context") for t in trials if all(t.params.get(k) == v for k, v in none.items())}
    return [_plain(space, c) for c in range(len(space.contexts)) if c not in tried][:max(n, 0)]


def _plain(space: SearchSpace, context: int) -> dict[str, Any]:
    """The parameters of context ``context`` unedited (every edit at its 'none' value)."""
    p = {"context": context, "insert": "none", "ins_span": 0, "ins_len": 1, "ins_at": 1, "repeat_len": 0,
         "repeat_from": 0, "n_swaps": 0}
    p |= {f"swap{i}_{ab}": 0 for i in range(MAX_SWAPS) for ab in "ab"}
    p |= {k: v for i in range(space.n_slots) for k, v in ((f"slot{i}_pos", 0), (f"slot{i}_tok", -1))}
    p |= {k: v for i in range(space.n_gcg) for k, v in ((f"gcg{i}_pos", 0), (f"gcg{i}_rank", -1))}
    return p


def mutations(trials: list[Any], n: int, rng: random.Random, *, parents: int = 8, warmup: int = 32, cap: int = 16,
              space: SearchSpace | None = None, tries: int = 24) -> list[dict[str, Any]]:
    """``n`` parameter sets, each a copy of a parent trial with one or two parameters other than its context redrawn
    from their distributions: a local search around what works, in turn over the parents.

    Parents: the best trial of each of the ``parents`` best contexts among the hits; with no hit yet (and at
    least ``warmup`` trials), among all trials by objective value, so that the search climbs from its nearest
    misses to a first hit. A context that already holds ``cap`` hits is no parent any more: the local search then
    climbs toward hits in other contexts (other documents), instead of varying one prompt without end. One parent
    per context spreads the search over every context that works.

    Why: a hit's neighbours (the same context with another swap, slot token or insertion) are hits far more often
    than a draw from the whole space, and TPE alone, which models each parameter's marginal good/bad densities,
    is slow to find them. Empty before the warm-up.

    With ``space``, a mutation is redrawn (up to ``tries`` times) while its prompt is one the study already scored
    or this call already proposed: redrawing a parameter that is inactive (the span of an insertion that is
    'none', the position of an empty slot) changes nothing, and near an unedited parent most single redraws are
    such (SmolLM2: 48 hits in 192 trials were 5 distinct prompts).
    """
    hits = [t for t in trials if t.user_attrs.get("scores", {}).get("adversarial")]
    per_context = Counter(t.params.get("context") for t in hits)
    is_open = lambda t: per_context[t.params.get("context")] < cap  # noqa: E731
    pool = [t for t in hits if is_open(t)] or ([t for t in trials if is_open(t)] if len(trials) >= warmup else [])
    best: dict[Any, Any] = {}
    for t in sorted(pool, key=lambda t: t.values[0], reverse=True):
        best.setdefault(t.params.get("context"), t)
    chosen = list(best.values())[:parents]
    seen = {tuple(t.user_attrs["scores"]["tokens"]) for t in trials if "tokens" in t.user_attrs.get("scores", {})}
    out = []
    for i in range(n if chosen else 0):
        parent = chosen[i % len(chosen)]
        for _ in range(tries):
            params = _mutate(parent, rng)
            key = None if space is None else tuple(build_prompt(params, space).tolist())
            if key not in seen:
                break
        seen.add(key)
        out.append(params)
    return out


def _mutate(parent: Any, rng: random.Random) -> dict[str, Any]:
    """The parent's parameters with one or two of them, other than its context, redrawn from their distributions."""
    params = dict(parent.params)
    for name in rng.sample([k for k in params if k != "context"], rng.choice((1, 2))):
        dist = parent.distributions[name]
        params[name] = (rng.choice(dist.choices) if hasattr(dist, "choices")
                        else rng.randint(int(dist.low), int(dist.high)))
    return params


def _counts(stored: list[Any], mode: str) -> tuple[int, int, float]:
    """(complete trials, adversarial among them, best scalar objective or nan) across all workers."""
    examples = sum(bool(t.user_attrs.get("scores", {}).get("adversarial")) for t in stored)
    best = max((t.values[0] for t in stored), default=float("nan")) if mode == "scalar" else float("nan")
    return len(stored), examples, best


def _score_record(s: Scores, i: int, config: SearchConfig, hit: bool) -> dict[str, Any]:
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


def _run_batch(mirror: _Mirror, n: int, space: SearchSpace, evaluator: Evaluator, config: SearchConfig, salt: int,
               tally: _Tally) -> None:
    """Ask n, build and score n prompts in one evaluation, tell; store what still fits the budget."""
    t0 = time.perf_counter()
    trials = mirror.ask(n, salt, space)
    prompts = torch.stack([build_prompt(suggest(t, space), space) for t in trials])
    t1 = time.perf_counter()
    scores = evaluator(prompts)
    if config.mode == "scalar":
        values = scalar_objective(scores, config.thresholds, config.objective)[:, None]
    else:
        values = multi_objectives(scores, config.objective)
    adv = is_hit(scores, config.thresholds, config.objective)
    records = [_score_record(scores, i, config, bool(adv[i])) for i in range(n)]
    t2 = time.perf_counter()
    frozen = mirror.finish(trials, values.tolist(), records)
    if any(f.state.name != "COMPLETE" for f in frozen):  # never spin on trials that cannot complete
        raise RuntimeError(f"optuna refused the values of trial {frozen[0].number} ({values[0].tolist()})")
    t3 = time.perf_counter()
    free = config.trials - len(mirror.sync())  # another worker may have filled the budget meanwhile
    for f in frozen[:max(free, 0)]:
        mirror.study.add_trial(f)
    tally.surplus += max(0, len(frozen) - max(free, 0))
    tally.told += min(len(frozen), max(free, 0))
    tally.t_sampler += (t1 - t0) + (t3 - t2)
    tally.t_eval += t2 - t1
    tally.t_storage += time.perf_counter() - t3
    tally.batches += 1


def _loop(study: Any, space: SearchSpace, evaluator: Evaluator, config: SearchConfig, salt: int,
          bar: Callable[[_Tally], None]) -> _Tally:
    tally, mirror = _Tally(), _Mirror(study, config)
    while True:
        t0 = time.perf_counter()
        tally.study_complete, tally.study_examples, tally.best = _counts(mirror.sync(), config.mode)
        tally.t_storage += time.perf_counter() - t0
        bar(tally)
        enough = config.max_examples and tally.study_examples >= config.max_examples
        if tally.study_complete >= config.trials or enough:
            return tally
        n = min(config.batch, config.trials - tally.study_complete)
        _run_batch(mirror, n, space, evaluator, config, salt, tally)


# ------------------------------------------------------------------------------------------------ output


def _candidates(study: Any, config: SearchConfig) -> list[Any]:
    """Complete adversarial trials, best first, one per distinct token sequence."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("scores", {}).get("adversarial")]
    key = (lambda t: t.values[0]) if config.mode == "scalar" else (lambda t: t.values[0] - t.values[1])
    seen, out = set(), []
    for t in sorted(done, key=key, reverse=True):
        toks = tuple(t.user_attrs["scores"]["tokens"])
        if toks not in seen:
            seen.add(toks)
            out.append(t)
    return out


def verify_resamples(windows: Any, space: SearchSpace, config: SearchConfig) -> torch.Tensor:
    """Fresh resamples for re-verification, drawn with another seed than the search's.

    Why fresh: the search scores TE against R fixed resamples, so it can find prompts whose TE is small for
    those R texts only (on the planted model it does exactly that for the honest head). An example is
    reported only if its TE is small against resamples the search never saw.
    """
    return windows.sample(config.seq_len, config.verify_resamples, seed=config.seed + 3,
                          exclude=set(space.base_docs) | set(config.exclude_docs))[0]


def _verified_rows(bridge: Any, study: Any, target: Component, resamples: torch.Tensor, config: SearchConfig,
                   space: SearchSpace) -> tuple[list[dict], int]:
    """Re-score the best candidates on the slow reference path with ``resamples`` (fresh); rows for those that still
    pass, and how many failed."""
    pareto = {t.number for t in study.best_trials} if config.mode == "multi" else set()
    rows, rejected = [], 0
    for t in _candidates(study, config)[:config.max_verify]:
        fast = t.user_attrs["scores"]
        v = verify(bridge, target, torch.tensor(fast["tokens"]), resamples)
        slow = slow_scores(v)
        if not is_hit(slow, config.thresholds, config.objective):
            rejected += 1
            continue
        tok = bridge.tokenizer
        rows.append({"text": tok.decode(fast["tokens"]), "tokens": fast["tokens"], "t1": v["t1"], "t2": v["t2"],
                     "t1_str": tok.decode([v["t1"]]), "t2_str": tok.decode([v["t2"]]), "ld": v["ld"],
                     "target": target.name, "dla": v["dla"], "rank": v["rank"], "te_mean": v["te_mean"],
                     "te_std": v["te_std"], "de_mean": v["de_mean"], "de_std": v["de_std"],
                     "dla_share": slow.dla_share, "te_share": slow.te_share, "de_share": slow.de_share,
                     "mechanism": mechanism(v["dla"], v["de_mean"], v["te_mean"], v["ld"], config.thresholds,
                                            rank=v["rank"]),
                     "objective": config.objective, "objective_values": list(t.values),
                     "naturalness": fast["naturalness"], "trial": t.number, "seed": config.seed, "verified": True,
                     "pareto": t.number in pareto, "source_doc": space.source_doc(t.params["context"])})
    return rows, rejected


def slow_scores(v: dict[str, float]) -> SimpleNamespace:
    """:func:`~advdla.search.evaluate.verify`'s floats with the shares :class:`Scores` has (LD clamped as there):
    ``is_hit`` and ``is_adversarial`` read them as they read a batch of Scores."""
    safe_ld = max(abs(v["ld"]), 1e-3)
    return SimpleNamespace(rank=v["rank"], ld=v["ld"], dla=v["dla"], te_mean=v["te_mean"], de_mean=v["de_mean"],
                           dla_share=v["dla"] / safe_ld, te_share=abs(v["te_mean"]) / safe_ld,
                           de_share=v["de_mean"] / safe_ld)


EXAMPLE_COLUMNS = ["text", "tokens", "t1", "t2", "t1_str", "t2_str", "ld", "target", "dla", "rank", "te_mean", "te_std",
                   "de_mean", "de_std", "dla_share", "te_share", "de_share", "mechanism", "objective",
                   "objective_values", "naturalness", "trial", "seed", "verified", "pareto", "source_doc"]


def _write_outputs(out_dir: Path, rows: list[dict], summary: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=EXAMPLE_COLUMNS)
    write_atomic(out_dir / "examples.parquet", lambda p: frame.to_parquet(p, index=False))
    write_json_atomic(out_dir / "search.json", summary)
    return frame


def verified_examples(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a search's examples frame (``SearchResult.examples``, ``examples.parquet``) whose ``verified`` is
    true: the ones re-scored on the slow path with fresh resamples that still passed the thresholds."""
    return frame[frame["verified"].astype(bool)] if len(frame) else frame


def read_search(out_dir: str | Path) -> SearchResult:
    """A finished search read back from what :func:`run_search` wrote into ``out_dir`` (no model, no study)."""
    out_dir = Path(out_dir)
    try:
        summary = json.loads((out_dir / "search.json").read_text())
        frame = pd.read_parquet(out_dir / "examples.parquet")
    except (OSError, ValueError) as exc:
        raise AdvdlaError(f"cannot read the search in {out_dir} ({type(exc).__name__}: {exc}): run it again "
                          f"(the study in study.db resumes)") from None
    return SearchResult(summary["target"], frame, summary, out_dir)


# ---------------------------------------------------------------------------------------------- public


def run_search(bridge: Any, config: SearchConfig, *, out_dir: str | Path, storage: str | None = None,
               study_name: str | None = None, progress: Progress | None = None) -> SearchResult:
    """Search for prompts where ``config.target``'s DLA overstates its total effect; write and return what was found.

    ``storage`` defaults to ``sqlite:///OUT/study.db`` and ``study_name`` to ``advdla-search``: running the same
    call again resumes that study. Writes ``OUT/examples.parquet`` (verified examples) and ``OUT/search.json``.
    ``progress`` gets a ``Step("search", complete trials, budget, info)`` before every batch.
    """
    validate(config)
    check_lengths(bridge, config)
    t_start = time.perf_counter()
    windows = TokenWindows(load_corpus(config.corpus), bridge.tokenizer)
    target = resolve_target(bridge, config.target, windows, seq_len=config.seq_len, seed=config.seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)  # only now: a bad target leaves nothing behind
    shared = storage is not None  # a shared study: salt the sampler seed with the pid, so workers explore apart
    storage_url = storage or f"sqlite:///{(out_dir / 'study.db').resolve()}"
    store = open_storage(storage_url)
    model = getattr(getattr(bridge, "advdla_card", None), "name", "model")
    study_name = study_name or "advdla-search"
    study = _open_study(config, store, study_name, config.space_key(model, target.name))
    t_setup0 = time.perf_counter()
    space = space_for(bridge, windows, target, config)
    evaluator = Evaluator(bridge, target, search_resamples(windows, space, config))
    t_setup = time.perf_counter() - t_setup0
    t_loop0 = time.perf_counter()
    tally = _loop(study, space, evaluator, config, os.getpid() if shared else 0, _reporter(progress, config))
    t_loop = time.perf_counter() - t_loop0
    t_verify0 = time.perf_counter()
    rows, rejected = _verified_rows(bridge, study, target, verify_resamples(windows, space, config), config, space)
    t_verify = time.perf_counter() - t_verify0
    timings = {"setup_s": t_setup, "loop_s": t_loop, "verify_s": t_verify, "total_s": time.perf_counter() - t_start}
    summary = _summary(config, model, target, storage_url, study_name, space, tally, rows, rejected, timings)
    frame = _write_outputs(out_dir, rows, summary)
    return SearchResult(target.name, frame, summary, out_dir)


_SPACES: dict[tuple, SearchSpace] = {}  # the last few spaces built, by what determines them (searches in one process)


def space_for(bridge: Any, windows: Any, target: Component, config: SearchConfig) -> SearchSpace:
    """:func:`~advdla.search.space.build_space` for ``config``, reused when a search in this process already built
    the same one (same model object, target and space fields): the yield's TPE and random arms share it."""
    card = getattr(bridge, "advdla_card", None)
    key = (id(bridge), getattr(card, "weights_fingerprint", None), target.name, config.corpus, config.seq_len,
           config.seed, config.n_base, config.pool_size, config.n_slots, tuple(sorted(config.exclude_docs)),
           config.n_gcg, config.gcg_k, config.thresholds.top_k, config.thresholds.margin)
    if key not in _SPACES:
        while len(_SPACES) >= 8:
            _SPACES.pop(next(iter(_SPACES)))
        _SPACES[key] = build_space(bridge, windows, target, seq_len=config.seq_len, seed=config.seed,
                                   n_base=config.n_base, pool_size=config.pool_size, n_slots=config.n_slots,
                                   exclude=set(config.exclude_docs), n_gcg=config.n_gcg, gcg_k=config.gcg_k,
                                   top_k=config.thresholds.top_k, margin=config.thresholds.margin)
    return _SPACES[key]


def search_resamples(windows: Any, space: SearchSpace, config: SearchConfig) -> torch.Tensor:
    """The R fixed resamples every candidate's TE is averaged over (other documents than the bases)."""
    return windows.sample(config.seq_len, config.resamples, seed=config.seed + 2,
                          exclude=set(space.base_docs) | set(config.exclude_docs))[0]


def _reporter(progress: Progress | None, config: SearchConfig) -> Callable[[_Tally], None]:
    """The loop's per-batch report as a progress :class:`~advdla.progress.Step`."""
    tick = progress or silent

    def report(tally: _Tally) -> None:
        best = "" if tally.best != tally.best else f" · best {tally.best:.3f}"
        info = f"examples {tally.study_examples}{best}"
        tick(Step("search", done=tally.study_complete, total=config.trials, info=info))

    return report


def _summary(config: SearchConfig, model: str, target: Component, storage: str, study_name: str, space: SearchSpace,
             tally: _Tally, rows: list[dict], rejected: int, timings: dict[str, float]) -> dict[str, Any]:
    loop = max(timings["loop_s"], 1e-9)
    complete = max(tally.study_complete, 1)
    return {"model": model, "target": target.name, "objective": config.objective, "config": config.as_dict(),
            "thresholds": config.thresholds.as_dict(), "storage": storage, "study": study_name,
            "space": space.describe(), "docs": sorted(set(space.base_docs)),  # documents prompts may borrow from
            "counts": {"study_complete_trials": tally.study_complete, "study_adversarial_fast": tally.study_examples,
                       "verified_examples": len(rows), "verified_of": len(rows) + rejected,
                       "rejected_on_verify": rejected, "stored_by_this_worker": tally.told,
                       "surplus_dropped": tally.surplus,
                       "adversarial_per_100_candidates": 100.0 * tally.study_examples / complete,
                       "verified_mechanisms": {m: sum(r["mechanism"] == m for r in rows)
                                               for m in ("compensation", "baseline", "mixed")}},
            "sampler_share": tally.t_sampler / loop,
            "timings": {**timings, "sampler_s": tally.t_sampler, "eval_s": tally.t_eval, "storage_s": tally.t_storage,
                        "candidates_per_s": tally.told / loop}}


def corpus_baseline(bridge: Any, config: SearchConfig, *, n: int, target: Component | None = None) -> dict[str, Any]:
    """Unmanipulated corpus windows of the same length, scored like candidates: hits for the objective per 100.

    The windows come from documents the search's bases and spans do not use (and not from ``exclude_docs``), and
    TE/DE use the search's own resamples, so the rate is comparable with a search's ``adversarial_per_100``.
    """
    validate(config)
    check_lengths(bridge, config)
    windows = TokenWindows(load_corpus(config.corpus), bridge.tokenizer)
    target = target or resolve_target(bridge, config.target, windows, seq_len=config.seq_len, seed=config.seed)
    space = space_for(bridge, windows, target, config)
    evaluator = Evaluator(bridge, target, search_resamples(windows, space, config))
    tokens = windows.sample(config.seq_len, n, seed=config.seed + 7,
                            exclude=set(space.base_docs) | set(config.exclude_docs))[0]
    hits = sum(int(is_hit(evaluator(tokens[i:i + config.batch]), config.thresholds, config.objective).sum())
               for i in range(0, n, config.batch))
    return {"target": target.name, "objective": config.objective, "candidates": n, "adversarial": hits,
            "adversarial_per_100_candidates": 100.0 * hits / n}
