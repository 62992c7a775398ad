"""The local search that ``tpe`` runs beside its model: unedited contexts first, then mutations of the best trials.

Context: TPE models each parameter's marginal good and bad densities; a hit's neighbours (the same context with
another swap, slot token or insertion) are hits far more often than a draw from the whole space, and TPE alone
is slow to find them. So each ``tpe`` batch (:class:`advdla.search.loop.StoredStudyMirror`) is partly enqueued
from here: the pre-screened contexts as they stand (:func:`unedited`) while they last, then one- or
two-parameter mutations of the best hit of each of the best contexts (:func:`mutations`).

Intuition: enqueued parameter sets go through the same ask/tell as sampled ones, so they are stored, resumed and
counted like any other trial; the samplers never need to know which trials came from here.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from advdla.search.space import MAX_SWAPS, SearchSpace, build_prompt

__all__ = ["unedited", "mutations"]


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
    """``n`` parameter sets, each a copy of a parent trial (:func:`_parents`) with one or two parameters other than
    its context redrawn from their distributions: a local search around what works, in turn over the parents.

    Why: a hit's neighbours (the same context with another swap, slot token or insertion) are hits far more often
    than a draw from the whole space, and TPE alone, which models each parameter's marginal good/bad densities,
    is slow to find them. Empty before the warm-up.

    With ``space``, a mutation is redrawn (up to ``tries`` times) while its prompt is one the study already scored
    or this call already proposed: redrawing a parameter that is inactive (the span of an insertion that is
    'none', the position of an empty slot) changes nothing, and near an unedited parent most single redraws are
    such (SmolLM2: 48 hits in 192 trials were 5 distinct prompts).
    """
    chosen = _parents(trials, parents=parents, warmup=warmup, cap=cap)
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


def _parents(trials: list[Any], *, parents: int, warmup: int, cap: int) -> list[Any]:
    """The best trial of each of the ``parents`` best contexts among the hits, best first.

    With no hit yet (and at least ``warmup`` trials), among all trials by objective value, so that the search
    climbs from its nearest misses to a first hit. A context that already holds ``cap`` hits is no parent any
    more: the local search then climbs toward hits in other contexts (other documents), instead of varying one
    prompt without end. One parent per context spreads the search over every context that works.
    """
    hits = [t for t in trials if t.user_attrs.get("scores", {}).get("adversarial")]
    per_context = Counter(t.params.get("context") for t in hits)
    is_open = lambda t: per_context[t.params.get("context")] < cap  # noqa: E731
    pool = [t for t in hits if is_open(t)] or ([t for t in trials if is_open(t)] if len(trials) >= warmup else [])
    best: dict[Any, Any] = {}
    for t in sorted(pool, key=lambda t: t.values[0], reverse=True):
        best.setdefault(t.params.get("context"), t)
    return list(best.values())[:parents]


def _mutate(parent: Any, rng: random.Random) -> dict[str, Any]:
    """The parent's parameters with one or two of them, other than its context, redrawn from their distributions."""
    params = dict(parent.params)
    for name in rng.sample([k for k in params if k != "context"], rng.choice((1, 2))):
        dist = parent.distributions[name]
        params[name] = (rng.choice(dist.choices) if hasattr(dist, "choices")
                        else rng.randint(int(dist.low), int(dist.high)))
    return params
