"""The verdict: the sentences that say what a table shows, every number in them read from the records.

Context: a leaderboard is read for its conclusion: is DLA misled on the adversarial examples, and does any method do
better there? A hand-written conclusion goes stale the moment a record changes, so the page writes none: :func:`verdict`
(the three or four sentences above each table of ``LEADERBOARD.md``) and :func:`run_verdict` (the three lines that
end ``advdla run``) are generated from the records each time they are shown.

Intuition: a claim is made only where a paired interval supports it. "Better than DLA" means the paired
cluster-bootstrap interval of the difference excludes 0 (:func:`advdla.leaderboard.ranking.beats`); where the
examples of a group come from one base document there is no interval, and the sentence says so rather than
reporting a zero width. :func:`run_verdict` speaks only once the adversarial examples span
:data:`MIN_VERDICT_DOCS` documents.
"""

from __future__ import annotations

import math

from advdla.leaderboard.ranking import BASELINE, adv_vs_natural, beats, n_documents, paired, per_example, role
from advdla.leaderboard.records import Entry

__all__ = ["RELATIVE", "MIN_VERDICT_DOCS", "verdict", "run_verdict"]

RELATIVE = "dla-relative"  # the verdict asks whether it fixes baseline examples
MIN_VERDICT_DOCS = 5  # run_verdict speaks only when the adversarial examples span this many base documents


def verdict(entries: list[Entry]) -> list[str]:
    """Three or four sentences stating what one (suite, split) table says, every number read from the records:
    how often DLA is fooled (per mechanism), which methods beat DLA on compensation examples with a paired
    interval that excludes 0, whether dla-relative fixes baseline examples, and the ceiling against the best."""
    by = {e.method: e for e in entries}
    dla = by.get(BASELINE)
    if dla is None:
        return [f"DLA was not scored on this split, so nothing is compared with it; {len(entries)} methods were."]
    out = [_dla_sentence(dla)]
    out.append(_compensation_sentence(entries, dla))
    if "baseline" in dla.metrics:
        out.append(_baseline_sentence(by.get(RELATIVE), dla))
    ceiling = _ceiling_sentence(entries)
    if ceiling:
        out.append(ceiling)
    return out


def run_verdict(entries: list[Entry]) -> list[str]:
    """Two interval lines and one verdict sentence for one (suite, split) table, every number read from the records:
    DLA on adversarial minus natural examples (Spearman below 0 or fooled above 0, interval excluding 0: the
    adversarial examples do mislead it), the best method by adversarial Spearman minus DLA (paired), and what
    the two say together."""
    dla = {e.method: e for e in entries}.get(BASELINE)
    methods = [e for e in entries if role(e) == "method" and e is not dla
               and not math.isnan(e.value("adversarial", "spearman"))]
    if dla is None or not methods:
        return ["No verdict: DLA and at least one other method must be scored on the split."]
    rho, fooled = adv_vs_natural(dla, "spearman"), adv_vs_natural(dla, "fooled")
    best = max(methods, key=lambda e: e.value("adversarial", "spearman"))
    diff = paired(best, dla, "spearman", "adversarial")
    lines = [f"DLA, adversarial minus natural examples: Spearman {_interval(rho)}, fooled {_interval(fooled)} "
             f"(95% intervals that resample whole documents).",
             f"{best.method} (best Spearman on adversarial examples) minus DLA there: Spearman {_interval(diff[:3])} "
             f"(paired 95% interval over {diff[3]} examples)."]
    docs = {str(r.get("cluster", i)) for i, r in per_example(dla).items() if r.get("kind") == "adversarial"}
    if len(docs) < MIN_VERDICT_DOCS:  # a bootstrap over one or two documents has an interval of width ~0
        lines.append(f"Verdict: none yet: the adversarial examples come from {len(docs)} base document(s), and a "
                     f"verdict needs at least {MIN_VERDICT_DOCS} (search longer, or with another --seed).")
        return lines
    misled = rho[2] < 0 or fooled[1] > 0
    first = ("DLA misleads measurably more on the adversarial examples than on natural text" if misled
             else "DLA does not mislead measurably more on the adversarial examples than on natural text")
    second = (f"{best.method} ranks components measurably better than DLA there" if diff[1] > 0
              else f"no method, not even {best.method}, ranks components measurably better than DLA there")
    lines.append(f"Verdict: {first}, and {second}.")
    return lines


def _interval(v: tuple[float, ...]) -> str:
    return f"{v[0]:+.2f} [{v[1]:+.2f}, {v[2]:+.2f}]"


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:.0f}%"


def _dla_sentence(dla: Entry) -> str:
    per = [f"{_pct(dla.value(g, 'fooled'))} of {dla.n.get(g, 0)} {g}" for g in ("compensation", "baseline", "mixed")
           if dla.n.get(g)]
    detail = f" ({'; '.join(per)})" if per else ""
    out = (f"DLA is fooled on {_pct(dla.value('adversarial', 'fooled'))} of the {dla.n.get('adversarial', 0)} "
           f"adversarial examples{detail} and on {_pct(dla.value('natural', 'fooled'))} of the "
           f"{dla.n.get('natural', 0)} natural ones")
    diffs = [(m, adv_vs_natural(dla, m)) for m in ("fooled", "spearman")]
    shown = [f"{m} {d:+.2f} [{lo:+.2f}, {hi:+.2f}]" for m, (d, lo, hi) in diffs if not math.isnan(lo)]
    if shown:
        out += (f"; adversarial minus natural, with 95% intervals that resample whole documents: "
                f"{', '.join(shown)}")
    return out + "."


def _compensation_sentence(entries: list[Entry], dla: Entry) -> str:
    group = "compensation" if dla.n.get("compensation") else "adversarial"
    methods = [e for e in entries if role(e) == "method" and e is not dla]
    verdicts = {e.method: beats(e, dla, "spearman", group) for e in methods}
    if all(v is None for v in verdicts.values()):
        if dla.n.get(group) and n_documents(dla, group, "spearman") < 2:
            return (f"The {dla.n[group]} {group} examples all come from one document, so no interval can separate "
                    f"a method from DLA there.")
        return f"No per-example results on {group} examples to compare the methods with DLA."
    better = [f"{m} ({paired(next(e for e in methods if e.method == m), dla, 'spearman', group)[0]:+.2f})"
              for m, v in verdicts.items() if v]
    if not better:
        return (f"On {group} examples no method ranks components better than DLA with a paired 95% interval of "
                f"the Spearman difference that excludes 0.")
    rest = [m for m, v in verdicts.items() if v is False]
    tail = f"; {', '.join(rest)} do not" if rest else ""
    return (f"On {group} examples {_join(better)} rank components better than DLA (paired 95% interval of the "
            f"Spearman difference above 0, mean difference in brackets){tail}.")


def _baseline_sentence(relative: Entry | None, dla: Entry) -> str:
    if relative is None:
        return f"{RELATIVE} was not scored, so whether it fixes DLA's baseline examples is open."
    f_rel, f_dla = relative.value("baseline", "fooled"), dla.value("baseline", "fooled")
    if math.isnan(f_rel) or math.isnan(f_dla):
        return f"The fooled rates of {RELATIVE} and DLA on baseline examples are undefined here."
    if f_dla == 0:
        how = "DLA is not fooled there to begin with"
    elif f_rel <= 0.5 * f_dla:
        how = "at most half of DLA's: it fixes most of them" if f_rel > 0 else "it fixes all of them"
    else:
        how = "more than half of DLA's: it does not fix them"
    return (f"On the {dla.n.get('baseline', 0)} baseline examples {RELATIVE} is fooled on {_pct(f_rel)} against "
            f"DLA's {_pct(f_dla)}{_paired_note(relative, dla)}, {how}.")


def _paired_note(relative: Entry, dla: Entry) -> str:
    """`` (paired difference -0.75 [-1.00, -0.50])`` of the fooled rate on baseline examples, or why there is none."""
    mean, lo, hi, n = paired(relative, dla, "fooled", "baseline")
    if not n:
        return ""
    if math.isnan(lo):
        return f" (paired difference {mean:+.2f}; all from one document, so no interval)"
    return f" (paired difference {mean:+.2f} [{lo:+.2f}, {hi:+.2f}])"


def _ceiling_sentence(entries: list[Entry]) -> str | None:
    ceiling = next((e for e in entries if role(e) == "ceiling"), None)
    methods = [e for e in entries if role(e) == "method" and not math.isnan(e.value("adversarial", "spearman"))]
    if ceiling is None or not methods:
        return None
    best = max(methods, key=lambda e: e.value("adversarial", "spearman"))
    c, b = ceiling.value("adversarial", "spearman"), best.value("adversarial", "spearman")
    above = " (above it: resampling noise, not a better method)" if b > c else ""
    return (f"The noise ceiling ({ceiling.method} on the method resamples) reaches a Spearman of {c:.2f} on "
            f"adversarial examples; the best method, {best.method}, reaches {b:.2f}{above}.")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
