"""The suite config: one YAML file under ``suites/`` that says everything a suite is built from.

Context: a suite must be rebuildable, so every choice that shapes it (model, corpus, prompt length, targets,
search budget, resamples R, adversarial thresholds, panel policy, split sizes, seed) lives in its config, and
the canonical config is one link of the suite's fingerprint chain. Example (``suites/planted-erasure.yaml``)::

    name: planted-erasure
    version: 3
    model: planted-erasure
    targets: [L0H1]          # or: auto (the analysis' auto-target ranking, advdla.analysis.rank_targets)
    search: {trials: 48, batch: 16, sampler: tpe}
    resamples: 8             # R_truth: the truth's resamples
    method_resamples: 4      # R_method: the only counterfactuals a method sees (disjoint from the truth's)
    splits: {n_dev: 12, n_test: 12, n_natural: 12}

Validation is strict: an unknown key or an impossible value stops with one line naming the key and the
allowed keys or values, before anything expensive runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from advdla.criteria import Thresholds
from advdla.errors import AdvdlaError, did_you_mean
from advdla.search import SAMPLERS
from advdla.search.objectives import OBJECTIVES

__all__ = ["SuiteConfig", "SearchBudget", "SplitSizes", "load_config", "config_from_dict", "PanelPolicy"]


@dataclass
class PanelPolicy:
    """Which components carry truth (:func:`advdla.suites.truth.choose_panel`); recorded in suite manifests."""

    max_full: int = 512     # models with at most this many heads + MLPs get all of them in every panel
    size: int = 64          # else: the target and the largest |TE| on a separate screen resample set, this many
    screen_resamples: int = 2
    # only components of this layer and later (the target is always in): a late panel, where compensation
    # happens, costs a fraction of a full one (a patch recomputes only the layers after it). 0: every layer.
    min_layer: int = 0


@dataclass(frozen=True)
class SearchBudget:
    """What the adversarial search may spend per target."""

    trials: int = 64  # Optuna trials (each scores ``batch`` candidate prompts)
    batch: int = 16
    sampler: str = "tpe"
    objective: str = "compensation"  # which gap the search opens (advdla.search.objectives)


@dataclass(frozen=True)
class SplitSizes:
    """Examples per split: adversarial ones (dev and test) and natural controls (per split).

    Natural controls are unmanipulated corpus windows of the split's documents that pass the same LD margin
    and put the target in DLA's top k by the same rule as adversarial examples; at most ``natural_scan``
    windows per split are scanned to find them (how many were scanned is recorded: the natural rate).
    """

    n_dev: int = 12
    n_test: int = 12
    n_natural: int = 12
    natural_scan: int = 4000


@dataclass(frozen=True)
class SuiteConfig:
    name: str
    version: int = 1
    description: str = ""
    model: str = "smollm2-135m"
    corpus: str = "builtin"
    seq_len: int = 16
    seed: int = 0
    targets: Any = "auto"  # "auto" or a list of component names
    n_auto_targets: int = 2
    search: SearchBudget = field(default_factory=SearchBudget)
    resamples: int = 8  # R_truth: resamples the truth averages over
    method_resamples: int = 4  # R_method: the counterfactuals methods receive (disjoint documents)
    thresholds: dict = field(default_factory=dict)  # keys of advdla.criteria.Thresholds; missing -> defaults
    panel: PanelPolicy = field(default_factory=PanelPolicy)
    splits: SplitSizes = field(default_factory=SplitSizes)
    # The verdict's pre-registered hypotheses (advdla.leaderboard.hypotheses): how the suite is judged, not what it
    # holds, so they are not part of the fingerprint; the config file's history shows they came before the scores.
    hypotheses: list = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Canonical plain form (thresholds filled with defaults): what the fingerprint chain hashes."""
        d = dataclasses.asdict(self)
        del d["hypotheses"]
        d["thresholds"] = dataclasses.asdict(self.threshold_values())
        d["targets"] = self.targets if self.targets == "auto" else list(self.targets)
        if not d["panel"]["min_layer"]:
            del d["panel"]["min_layer"]  # configs from before min_layer existed keep their fingerprints
        return d

    def threshold_values(self) -> Any:
        return Thresholds(**self.thresholds)

    def with_(self, **changes: Any) -> SuiteConfig:
        return dataclasses.replace(self, **changes)


_NESTED = {"search": SearchBudget, "panel": PanelPolicy, "splits": SplitSizes}


def load_config(path: str | Path) -> SuiteConfig:
    """Read and validate a YAML suite config (``yaml.safe_load``: no Python objects from the file)."""
    path = Path(path)
    if not path.is_file():
        raise AdvdlaError(f"suite config {path} not found; shipped configs live in suites/*.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise AdvdlaError(f"suite config {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return config_from_dict(data, where=str(path))


def config_from_dict(data: Any, *, where: str = "suite config") -> SuiteConfig:
    if not isinstance(data, dict):
        raise AdvdlaError(f"{where}: expected a mapping of keys (name, model, targets, ...), got {type(data).__name__}")
    kwargs = _fields(SuiteConfig, data, where)
    for key, cls in _NESTED.items():
        if key in kwargs:
            if not isinstance(kwargs[key], dict):
                raise AdvdlaError(f"{where}: {key} must be a mapping (keys: {', '.join(_names(cls))})")
            kwargs[key] = cls(**_fields(cls, kwargs[key], f"{where}: {key}"))
    cfg = SuiteConfig(**kwargs)
    _check_values(cfg, where)
    return cfg


def _names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _fields(cls: type, data: dict, where: str) -> dict[str, Any]:
    """Keys checked against the dataclass: unknown -> error listing the allowed; missing required -> error."""
    names = _names(cls)
    for key in data:
        if key not in names:
            raise AdvdlaError(
                f"{where}: unknown key {key!r}; allowed keys: {', '.join(names)}.{did_you_mean(str(key), names)}"
            )
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [k for k in required if k not in data]
    if missing:
        raise AdvdlaError(f"{where}: missing required key(s) {', '.join(missing)}")
    return dict(data)


def _check_values(cfg: SuiteConfig, where: str) -> None:
    """Types and ranges, one line per problem (the first one found)."""
    ints = {
        "version": (cfg.version, 1),
        "seq_len": (cfg.seq_len, 2),
        "seed": (cfg.seed, 0),
        "n_auto_targets": (cfg.n_auto_targets, 1),
        "resamples": (cfg.resamples, 2),
        "method_resamples": (cfg.method_resamples, 1),
        "search.trials": (cfg.search.trials, 1),
        "search.batch": (cfg.search.batch, 1),
        "splits.n_dev": (cfg.splits.n_dev, 1),
        "splits.n_test": (cfg.splits.n_test, 1),
        "splits.n_natural": (cfg.splits.n_natural, 0),
        "splits.natural_scan": (cfg.splits.natural_scan, 0),
        "panel.max_full": (cfg.panel.max_full, 1),
        "panel.size": (cfg.panel.size, 2),
        "panel.screen_resamples": (cfg.panel.screen_resamples, 1),
        "panel.min_layer": (cfg.panel.min_layer, 0),
    }
    for key, (value, lo) in ints.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < lo:
            raise AdvdlaError(f"{where}: {key} must be an integer >= {lo}, got {value!r}")
    for key in ("name", "model", "corpus", "description"):
        if not isinstance(getattr(cfg, key), str) or (key != "description" and not getattr(cfg, key)):
            raise AdvdlaError(f"{where}: {key} must be a non-empty string")
    if not cfg.name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise AdvdlaError(
            f"{where}: name {cfg.name!r} must use only letters, digits, '-', '_' and '.' (it names a folder)"
        )
    if cfg.search.sampler not in SAMPLERS:
        raise AdvdlaError(
            f"{where}: search.sampler {cfg.search.sampler!r} is unknown; use one of {', '.join(SAMPLERS)}"
            f"{did_you_mean(str(cfg.search.sampler), SAMPLERS)}"
        )
    if cfg.search.objective not in OBJECTIVES:
        raise AdvdlaError(
            f"{where}: search.objective {cfg.search.objective!r} is unknown; use one of {', '.join(OBJECTIVES)}"
            f"{did_you_mean(str(cfg.search.objective), OBJECTIVES)}"
        )
    _check_targets(cfg.targets, where)
    _check_thresholds(cfg.thresholds, where)


def _check_targets(targets: Any, where: str) -> None:
    ok = targets == "auto" or (isinstance(targets, list) and targets and all(isinstance(t, str) for t in targets))
    if not ok:
        raise AdvdlaError(
            f"{where}: targets must be 'auto' or a non-empty list of component names such as [L0H1], got {targets!r}"
        )
    if isinstance(targets, list) and len(set(targets)) != len(targets):
        raise AdvdlaError(f"{where}: targets lists a component twice: {targets}")


def _check_thresholds(thr: Any, where: str) -> None:
    cls = Thresholds
    if not isinstance(thr, dict):
        raise AdvdlaError(f"{where}: thresholds must be a mapping (keys: {', '.join(_names(cls))})")
    _fields(cls, thr, f"{where}: thresholds")
    for key, value in thr.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise AdvdlaError(f"{where}: thresholds.{key} must be a number, got {value!r}")
    t = cls(**thr)
    if t.top_k < 1 or t.margin < 0 or t.max_te_share < 0 or t.min_dla_share <= t.max_te_share:
        raise AdvdlaError(
            f"{where}: impossible thresholds {dataclasses.asdict(t)}: need top_k >= 1, margin >= 0, "
            f"0 <= max_te_share < min_dla_share"
        )
