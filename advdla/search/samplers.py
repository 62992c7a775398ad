"""The samplers a search can use, as a registry: how each is built and what it is told.

Context: every sampler proposes the same trials (:func:`advdla.search.space.suggest`) and is told one of the two
objective shapes (:mod:`advdla.search.objectives`): ``scalar`` (one value, maximised) or ``multi`` (gain,
loss, naturalness, with constraints). A :class:`SamplerSpec` says which, and builds a fresh Optuna sampler for
a seed, so the loop asks the registry instead of branching on names:

- ``tpe`` (default): multivariate TPE with a constant liar, so the trials of a batch and of other workers that
  are still running are not proposed twice; it also runs the local search (:mod:`advdla.search.local`):
  the pre-screened contexts unedited first, then mutations of the best hits in every batch;
- ``nsga2``: multi-objective (DLA share up, |TE| share down, naturalness up); its Pareto front is kept;
- ``random``: the baseline: the same space, no model of it.

Intuition: a new sampler is one :meth:`~advdla.registry.Registry.add` here; validation, the summary and the
suite config's check (``x in SAMPLERS``) pick it up.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import optuna

from advdla.registry import Registry

__all__ = ["SamplerSpec", "SAMPLERS"]


@dataclass(frozen=True)
class SamplerSpec:
    """One sampler: its name, what it is for, the objective shape it is told, and how to build it."""

    name: str
    description: str
    mode: str  # "scalar" (one value) or "multi" (objectives.DIRECTIONS names the directions of each)
    build: Callable[[int, int], optuna.samplers.BaseSampler]  # (seed, batch) -> a fresh sampler
    local_search: bool = False  # each batch starts with unedited contexts and mutations of the best trials


def _tpe(seed: int, batch: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():  # multivariate TPE is marked experimental; it models the parameters jointly
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True, multivariate=True,
                                          n_startup_trials=max(10, batch))


def _nsga2(seed: int, batch: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(batch, 16))


def _random(seed: int, batch: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


SAMPLERS: Registry[SamplerSpec] = Registry("sampler")
for _spec in (SamplerSpec("tpe", "multivariate TPE with a constant liar, plus local search", "scalar", _tpe,
                          local_search=True),
              SamplerSpec("nsga2", "NSGA-II over (gain, loss, naturalness); keeps a Pareto front", "multi", _nsga2),
              SamplerSpec("random", "the baseline: the same space sampled at random", "scalar", _random)):
    SAMPLERS.add(_spec.name, _spec)
