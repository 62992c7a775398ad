"""The verdict: the suite's pre-registered hypotheses tested on dev and on test, every number read from the records.

Context: a leaderboard is read for its conclusion (does DLA mislead on these prompts, and does any method do
better?), and a conclusion is only as good as the way it was reached. So the verdict tests exactly the hypotheses the
suite registered before it was scored (:mod:`advdla.leaderboard.hypotheses`), with these rules:

- each test is one-sided, by a cluster bootstrap over *source files* (the records' ``cluster``), on each split;
- a ``beats`` family (every ranked method against DLA) is Holm-corrected over the methods compared;
- the best method is the one best on **dev**; its claim is then tested on **test**;
- a claim is stated only where it holds (p < :data:`ALPHA` after correction) on test *and* on dev: a result on one
  split only is reported as not replicated;
- a split whose examples of a tested group come from fewer than :data:`MIN_SOURCES` source files gets no test, and the
  sentence says how many it has.

:func:`evaluate_hypotheses` returns the outcomes as plain dicts (JSON output takes them as they are); :func:`verdict`
writes them as sentences; :func:`run_verdict` (the lines that end ``advdla run``) is the same verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from advdla.leaderboard.hypotheses import Hypothesis, hypotheses_for, registration_hash
from advdla.leaderboard.ranking import BASELINE, in_group, per_example, role
from advdla.leaderboard.records import Entry, as_float
from advdla.scoring.stats import group_difference, group_p, holm, paired_interval, paired_p

__all__ = ["ALPHA", "MIN_SOURCES", "MIN_VERDICT_DOCS", "by_split", "evaluate_hypotheses", "verdict", "run_verdict"]

ALPHA = 0.05
MIN_SOURCES = 5  # a split's tested group must span this many source files, or the split gets no test
MIN_VERDICT_DOCS = MIN_SOURCES  # the name ``advdla run`` used (kept for callers)
SPLITS = ("dev", "test")


def by_split(entries: list[Entry]) -> dict[str, dict[str, Entry]]:
    """split -> method -> entry, for the entries of one suite version."""
    out: dict[str, dict[str, Entry]] = {}
    for e in entries:
        out.setdefault(e.split, {})[e.method] = e
    return out


# -------------------------------------------------------------------------------------------------- tests


def _values(entry: Entry, metric: str, ids: list[str]) -> np.ndarray:
    rows = per_example(entry)
    return np.array([as_float(rows[i].get(metric)) if i in rows else math.nan for i in ids], dtype=float)


def _sources(rows: Mapping[str, Mapping[str, Any]], ids: list[str]) -> np.ndarray:
    return np.array([str(rows[i].get("cluster", i)) for i in ids])


def _group_test(h: Hypothesis, entry: Entry) -> dict[str, Any]:
    """One method's metric on ``h.group`` against ``h.versus`` on one split."""
    rows = per_example(entry)
    ids = [i for i, r in rows.items() if in_group(r, h.group) or in_group(r, h.versus)]
    values, in_a = _values(entry, h.metric, ids), np.array([in_group(rows[i], h.group) for i in ids], dtype=bool)
    ok = ~np.isnan(values)
    sources = _sources(rows, ids)
    n_a, n_b = len(set(sources[ok & in_a])), len(set(sources[ok & ~in_a]))
    sign = 1.0 if h.greater else -1.0
    point, lo, hi = group_difference(values, in_a, sources, seed=0)
    p = group_p(sign * values, in_a, sources, seed=0)
    n = int(min((ok & in_a).sum(), (ok & ~in_a).sum()))  # the smaller group's examples: 0 when one is missing
    return {"estimate": point, "lo": lo, "hi": hi, "p": p, "sources": min(n_a, n_b), "n": n}


def _paired_test(h: Hypothesis, entry: Entry, base: Entry) -> dict[str, Any]:
    """``entry`` minus ``base`` on ``h.metric`` over the ``h.group`` examples both were scored on, on one split."""
    mine, theirs = per_example(entry), per_example(base)
    ids = [i for i, r in theirs.items() if i in mine and in_group(r, h.group)]
    a, b = _values(entry, h.metric, ids), _values(base, h.metric, ids)
    ok = ~np.isnan(a - b)
    sources = _sources(theirs, ids)
    if not ok.any():
        return {"estimate": math.nan, "lo": math.nan, "hi": math.nan, "p": math.nan, "sources": 0, "n": 0}
    point, lo, hi = paired_interval(a, b, sources, seed=0)
    p = paired_p(a, b, sources, seed=0) if h.greater else paired_p(b, a, sources, seed=0)
    return {"estimate": point, "lo": lo, "hi": hi, "p": p, "sources": len(set(sources[ok])), "n": int(ok.sum())}


def _holds(result: Mapping[str, Any] | None) -> bool:
    return bool(result) and result["sources"] >= MIN_SOURCES and not math.isnan(result["p"]) and result["p"] < ALPHA


def _outcome(dev: Mapping[str, Any] | None, test: Mapping[str, Any] | None) -> str:
    """'holds' (dev and test), 'not replicated' (one split only), 'not supported', or 'no test' (why)."""
    for split, r in (("dev", dev), ("test", test)):
        if r is None:
            return f"no test: not scored on {split}"
        if r["n"] == 0:
            return f"no test: no examples of the tested groups on {split}"
        if r["sources"] < MIN_SOURCES:
            return f"no test: {split} has {r['sources']} source file(s), a test needs {MIN_SOURCES}"
    held = _holds(dev), _holds(test)
    return "holds" if all(held) else "not replicated" if any(held) else "not supported"


def _test_groups(h: Hypothesis, splits: Mapping[str, Mapping[str, Entry]]) -> dict[str, Any]:
    res = {s: _group_test(h, splits[s][h.method]) for s in SPLITS if h.method in splits.get(s, {})}
    return {"hypothesis": h, "method": h.method, **res, "outcome": _outcome(res.get("dev"), res.get("test"))}


def _test_beats(h: Hypothesis, splits: Mapping[str, Mapping[str, Entry]]) -> list[dict[str, Any]]:
    """Every ranked method against ``h.method`` on both splits, Holm-corrected per split over the methods; the first
    result is the method best on dev."""
    out = []
    for s in SPLITS:
        by = splits.get(s, {})
        base = by.get(h.method)
        rivals = sorted(n for n, e in by.items() if role(e) == "method" and n != h.method)
        tests = {n: _paired_test(h, by[n], base) for n in rivals} if base else {}
        for n, adj in zip(tests, holm([t["p"] for t in tests.values()])):
            tests[n]["p_raw"], tests[n]["p"] = tests[n]["p"], adj
        out.append(tests)
    dev, test = out
    order = sorted(dev, key=lambda n: -(dev[n]["estimate"] if h.greater else -dev[n]["estimate"])
                   if not math.isnan(dev[n]["estimate"]) else math.inf)
    return [{"hypothesis": h, "method": n, "dev": dev[n], "test": test.get(n), "best_on_dev": i == 0,
             "outcome": _outcome(dev[n], test.get(n))} for i, n in enumerate(order)]


def evaluate_hypotheses(entries: list[Entry], *, suites_dir: str | Path | None = None) -> dict[str, Any]:
    """The outcome of every pre-registered hypothesis of one suite version (entries of both splits)."""
    suite = entries[0].suite if entries else ""
    hypotheses, source = hypotheses_for(suite, suites_dir)
    splits = by_split(entries)
    results = []
    for h in hypotheses:
        if h.kind == "groups":
            results.append(_test_groups(h, splits))
        else:
            results.extend(_test_beats(h, splits))
    return {"registered": source, "hash": registration_hash(hypotheses), "results": results}


# ----------------------------------------------------------------------------------------------- sentences


def _num(r: Mapping[str, Any] | None) -> str:
    if not r or math.isnan(r["estimate"]):
        return "n/a"
    ci = "" if math.isnan(r["lo"]) else f" [{r['lo']:+.2f}, {r['hi']:+.2f}]"
    p = "" if math.isnan(r["p"]) else f", p={r['p']:.3f}"
    return f"{r['estimate']:+.2f}{ci}{p}, {r['sources']} files"


def _sentence(res: Mapping[str, Any]) -> str:
    h: Hypothesis = res["hypothesis"]
    what = h.statement if h.kind == "groups" else f"{res['method']} beats {h.method} on {h.metric} ({h.group})"
    best = " (best on dev)" if res.get("best_on_dev") else ""
    return f"{what}{best}: {res['outcome']}; dev {_num(res.get('dev'))}; test {_num(res.get('test'))}."


def verdict(entries: list[Entry], *, suites_dir: str | Path | None = None, all_methods: bool = False) -> list[str]:
    """The verdict of one suite version as sentences: one per hypothesis (for the ``beats`` family: the method best
    on dev, plus every method whose claim holds, or all of them with ``all_methods``), then what holds in words."""
    if BASELINE not in {e.method for e in entries}:
        return [f"No verdict: DLA was not scored on this suite ({len(entries)} records)."]
    tested = evaluate_hypotheses(entries, suites_dir=suites_dir)
    lines = [f"Pre-registered hypotheses {tested['hash']} ({tested['registered']}); one-sided tests, Holm-corrected "
             f"over methods, alpha {ALPHA}, intervals over source files; a claim needs dev and test."]
    for res in tested["results"]:
        if all_methods or res["hypothesis"].kind == "groups" or res.get("best_on_dev") or res["outcome"] == "holds":
            lines.append(_sentence(res))
    held = [res for res in tested["results"] if res["outcome"] == "holds"]
    lines.append("Verdict: " + ("; ".join(_claim(r) for r in held) if held else "no pre-registered claim holds on "
                                "both splits") + ".")
    return lines


def _claim(res: Mapping[str, Any]) -> str:
    h: Hypothesis = res["hypothesis"]
    return h.statement if h.kind == "groups" else f"{res['method']} beats {h.method} on {h.metric} ({h.group})"


def run_verdict(entries: list[Entry], *, suites_dir: str | Path | None = None) -> list[str]:
    """The lines that end ``advdla run``: the same verdict as the board's."""
    return verdict(entries, suites_dir=suites_dir)
