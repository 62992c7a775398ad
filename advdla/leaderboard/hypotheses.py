"""Pre-registered hypotheses: what a suite's verdict tests, fixed before any test split is read.

Context: a verdict chosen after looking at the numbers it reports (the best of nine methods on one split, two tests
OR'd together, no correction) says more about the choosing than about the methods. So each suite names, before
anything is scored, one primary hypothesis per mechanism and one family of method comparisons; the verdict
(:mod:`advdla.leaderboard.verdict`) tests exactly those, on dev and on test, and states a claim only where it holds on
both. The hypotheses live in the suite's config (``suites/<name>.yaml``, key ``hypotheses``), committed with it, so
the repository's history shows they came first; a suite that names none gets :data:`DEFAULT_HYPOTHESES`, fixed in
this file. :func:`registration_hash` fingerprints what was tested, and the verdict prints it.

A hypothesis is one of two kinds:
- ``groups``: one method's metric on two groups of examples (e.g. DLA's target false-alarm rate on compensation
  examples against natural controls), one-sided, by a cluster bootstrap that keeps source files whole;
- ``beats``: every ranked method against a baseline method on one metric and group (paired by example), one-sided,
  Holm-corrected over the methods compared; the best method is the one best on dev, and its claim is tested on test.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from advdla.errors import AdvdlaError

__all__ = ["Hypothesis", "DEFAULT_HYPOTHESES", "KINDS", "hypotheses_for", "registration_hash"]

KINDS = ("groups", "beats")


@dataclass(frozen=True)
class Hypothesis:
    """One pre-registered claim. ``metric`` is ``name@against`` (``false_alarm@te``); ``greater``: the claim is that
    A's mean exceeds B's (for ``groups``: ``group`` over ``versus``; for ``beats``: a method over ``method``), else
    that it is below."""

    id: str
    kind: str
    statement: str
    metric: str
    group: str
    method: str = "dla"
    versus: str = "natural"
    greater: bool = True


DEFAULT_HYPOTHESES = (
    Hypothesis("compensation", "groups",
               "DLA's target false-alarm rate on compensation examples exceeds its rate on natural controls",
               metric="false_alarm@te", group="compensation", versus="natural"),
    Hypothesis("baseline", "groups",
               "DLA's target error on baseline examples exceeds its target error on natural controls",
               metric="target_error@te", group="baseline", versus="natural"),
    Hypothesis("methods", "beats",
               "on importance MCC against the total effect (adversarial examples), a method beats DLA",
               metric="mcc@te", group="adversarial"),
)


def _parse(item: Any, where: str) -> Hypothesis:
    if not isinstance(item, dict):
        raise AdvdlaError(f"{where}: each hypothesis must be a mapping (id, kind, statement, metric, group, ...)")
    try:
        h = Hypothesis(**item)
    except TypeError as exc:
        raise AdvdlaError(f"{where}: bad hypothesis {item.get('id', '?')!r}: {exc}") from None
    if h.kind not in KINDS or "@" not in h.metric:
        raise AdvdlaError(f"{where}: hypothesis {h.id!r} needs kind in {KINDS} and a metric written NAME@te|de")
    return h


def hypotheses_for(suite: str, suites_dir: str | Path | None) -> tuple[tuple[Hypothesis, ...], str]:
    """The hypotheses registered for ``suite`` (its config's ``hypotheses`` list) and where they came from; the
    defaults where the config names none or cannot be found."""
    config = Path(suites_dir) / f"{suite}.yaml" if suites_dir is not None else None
    if config is None or not config.is_file():
        return DEFAULT_HYPOTHESES, "advdla's defaults"
    try:
        items = (yaml.safe_load(config.read_text()) or {}).get("hypotheses")
    except (OSError, yaml.YAMLError) as exc:
        raise AdvdlaError(f"cannot read the hypotheses of {config}: {exc}") from None
    if not items:
        return DEFAULT_HYPOTHESES, "advdla's defaults"
    return tuple(_parse(item, str(config)) for item in items), str(config)


def registration_hash(hypotheses: tuple[Hypothesis, ...]) -> str:
    """sha256 (first 12 hex digits) of the hypotheses as canonical JSON: the same claims give the same hash."""
    text = json.dumps([asdict(h) for h in hypotheses], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
