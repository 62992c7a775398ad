"""The cost-accuracy frontier: seconds per example against the primary metric, with the Pareto front marked.

Context: a method that is slower and no better than another is not worth running; the board says which methods
are worth their cost by drawing each one at (seconds per example, importance MCC against the total effect) and
marking the *Pareto front*, the ranked methods that no other ranked method beats on both axes at once. The same
points feed two views: :func:`frontier_figure` (a PNG, ``LEADERBOARD.md``'s first figure) and
:func:`frontier_lines` (a compact terminal view that fits in 80 columns without cutting a number).

Roles: only ``"method"`` points are ranked and can be on the front. ``"reference"`` points read the truth
(``exact-te``, ``exact-de``): they show where a perfect estimator of an estimand sits, drawn hollow and labelled
"(reads the truth)", never on the front. ``"ceiling"`` points (the truth's own reliability) are drawn apart too.

Intuition for the front: sort the points by seconds; walking from the fastest to the slowest, a point is on the
front exactly when it is better than every strictly faster point and is the best among the points as fast as it.
That is one sort and one pass (:func:`pareto_front`), checked against the obvious double loop
(:func:`pareto_front_reference`) on random inputs with ties.

matplotlib is imported here at the top, and :mod:`advdla.leaderboard` does not import this module, so reading
records does not pay for matplotlib.
"""

from __future__ import annotations

import itertools
import math
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from advdla.atomic import write_atomic
from advdla.errors import AdvdlaError

__all__ = ["ROLES", "Point", "pareto_front", "pareto_front_reference", "frontier_figure", "frontier_lines", "points_of",
           "write_frontiers"]

ROLES = ("method", "reference", "ceiling")
TRUTH_LABEL = "(reads the truth)"
# PNG metadata with nothing that changes between runs or installs, so that the same points give the same bytes.
PNG_METADATA = {"Software": None}
BAR_CELLS = 8


@dataclass(frozen=True)
class Point:
    """One method on the frontier.

    ``seconds`` is the method's wall time per example on the split; ``value`` the primary metric (importance MCC
    against the TE), the mean over examples, with its 95% interval ``lo``..``hi`` (NaN when there is none).
    ``role``: ``"method"`` (ranked), ``"reference"`` (reads the truth: exact-te, exact-de) or ``"ceiling"``.
    """

    method: str
    seconds: float
    value: float
    lo: float = math.nan
    hi: float = math.nan
    role: str = "method"

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or not self.method.strip():
            raise AdvdlaError(f"a frontier point needs a method name, got {self.method!r}: pass a non-empty string")
        if self.role not in ROLES:
            raise AdvdlaError(f"frontier point {self.method!r} has role {self.role!r}: use one of {', '.join(ROLES)}")

    @property
    def drawable(self) -> bool:
        """Whether the point can stand on a log-seconds axis: a finite value and a finite positive time."""
        return math.isfinite(self.value) and math.isfinite(self.seconds) and self.seconds > 0


def _order(p: Point) -> tuple[bool, float, bool, float, str]:
    """The deterministic order of points: fastest first, then better first, then by name; NaN after numbers
    (NaN compares false with everything, so it cannot be sorted as it is)."""
    no_time, no_value = math.isnan(p.seconds), math.isnan(p.value)
    return (no_time, 0.0 if no_time else p.seconds, no_value, 0.0 if no_value else -p.value, p.method)


def _candidates(points: list[Point], above: float) -> list[Point]:
    """The points that may be on the front: ranked, with a value and a time that are numbers (NaN never is), and
    measurably above ``above`` (chance: the value and, where there is one, its interval's lower bound; a method no
    better than an uninformed one is worth no cost, however fast)."""
    return [p for p in points if p.role == "method" and not math.isnan(p.value) and not math.isnan(p.seconds)
            and p.value > above and (math.isnan(p.lo) or p.lo > above)]


def pareto_front(points: list[Point], *, above: float = -math.inf) -> list[str]:
    """Names of the ranked points no other ranked point dominates, fastest first.

    ``q`` dominates ``p`` when it is at least as fast and at least as good, and strictly better in one of the two.
    One sort and one pass: a group of equally fast points contributes its best ones (ties all stay) when they beat
    the best value of every strictly faster point."""
    front, best = [], -math.inf
    for _, group in itertools.groupby(sorted(_candidates(points, above), key=_order), key=lambda p: p.seconds):
        group = list(group)
        top = max(p.value for p in group)
        if top > best:
            front.extend(p.method for p in group if p.value == top)
            best = top
    return front


def pareto_front_reference(points: list[Point], *, above: float = -math.inf) -> list[str]:
    """The same front by the obvious O(n^2) double loop, for tests to compare :func:`pareto_front` with."""
    ranked = sorted(_candidates(points, above), key=_order)
    front = []
    for p in ranked:
        dominated = False
        for q in ranked:
            no_worse = q.seconds <= p.seconds and q.value >= p.value
            if no_worse and (q.seconds < p.seconds or q.value > p.value):
                dominated = True
        if not dominated:
            front.append(p.method)
    return front


# ------------------------------------------------------------------------------------------ the figure


def frontier_figure(points: list[Point], path: str | os.PathLike, *, title: str,
                    metric_label: str = "importance MCC vs TE", chance: float = 0.0,
                    ceiling: float | None = None) -> Path:
    """Draw the frontier as a PNG at ``path`` (written atomically, mode following the umask); return the path.

    x: seconds per example on a log axis; y: the metric with its 95% intervals as error bars. The Pareto front is
    joined by a step line and ringed; reference rows are hollow and labelled "(reads the truth)"; dashed lines
    mark ``chance`` and, if given, the ``ceiling``. Points with no value or no positive time cannot be placed on a
    log axis: they are named in a note under the plot. The same input gives the same bytes."""
    if not points:
        raise AdvdlaError("no points to draw on the frontier: score at least one method first")
    matplotlib.use("Agg")  # files only, never a window: works with no display
    fig = _draw(points, title=title, metric_label=metric_label, chance=chance, ceiling=ceiling)
    try:
        return write_atomic(path, lambda tmp: _save_png(fig, tmp))
    finally:
        plt.close(fig)


def _save_png(fig: Any, tmp: Path) -> None:
    fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png", metadata=PNG_METADATA)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp made it 0600; a plain open() would follow the umask


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _draw(points: list[Point], *, title: str, metric_label: str, chance: float, ceiling: float | None) -> Any:
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    drawn = sorted((p for p in points if p.drawable), key=_order)
    front = set(pareto_front(points, above=chance))
    _draw_front(ax, [p for p in drawn if p.role == "method" and p.method in front])
    for p in drawn:
        _draw_point(ax, p)
    _label_points(ax, drawn)
    ax.axhline(chance, color="grey", ls="--", lw=1, label=f"chance ({chance:.2f})")
    if ceiling is not None and math.isfinite(ceiling):
        ax.axhline(ceiling, color="tab:green", ls="--", lw=1, label=f"noise ceiling ({ceiling:.2f})")
    ax.set_xscale("log")
    ax.set_xlabel("seconds per example (s, log scale)")
    ax.set_ylabel(metric_label)
    ax.set_title(textwrap.fill(title, width=70), fontsize=10)
    ax.grid(True, which="major", color="0.9", lw=0.6)
    _legend(ax, {p.role for p in drawn})
    left = [p.method for p in points if not p.drawable]
    if left:
        note = "not drawn (no value or no positive time): " + ", ".join(left)
        fig.text(0.01, -0.02, textwrap.fill(note, width=110), fontsize=7, va="top")
    return fig


def _draw_front(ax: Any, front: list[Point]) -> None:
    """The front as a staircase: from each front point along to the next one's time, then up to its value."""
    if not front:
        return
    xs, ys = [p.seconds for p in front], [p.value for p in front]
    ax.step(xs, ys, where="post", color="tab:red", lw=1.2, zorder=1, label="Pareto front")
    ax.scatter(xs, ys, s=160, facecolors="none", edgecolors="tab:red", lw=1.2, zorder=2)


_STYLE = {  # role -> (marker, face colour, edge colour)
    "method": ("o", "tab:blue", "tab:blue"),
    "reference": ("s", "none", "black"),
    "ceiling": ("D", "none", "tab:green"),
}


def _draw_point(ax: Any, p: Point) -> None:
    marker, face, edge = _STYLE[p.role]
    if math.isfinite(p.lo) and math.isfinite(p.hi):
        err = np.array([[max(p.value - p.lo, 0.0)], [max(p.hi - p.value, 0.0)]])
        ax.errorbar([p.seconds], [p.value], yerr=err, fmt="none", ecolor=edge, elinewidth=1, capsize=3, zorder=2)
    ax.plot([p.seconds], [p.value], marker=marker, ms=7, ls="none", markerfacecolor=face, markeredgecolor=edge,
            zorder=3)


def _label_points(ax: Any, drawn: list[Point]) -> None:
    """Name every point; neighbours in time alternate above-right and below-right so labels do not pile up."""
    for i, p in enumerate(drawn):
        name = f"{p.method} {TRUTH_LABEL}" if p.role == "reference" else p.method
        dy = 9 if i % 2 == 0 else -13
        ax.annotate(name, (p.seconds, p.value), xytext=(6, dy), textcoords="offset points", fontsize=7,
                    annotation_clip=False)


def _legend(ax: Any, roles: set[str]) -> None:
    """The legend: the lines drawn, plus one proxy marker per role present, so hollow markers are explained."""
    for role, label in (("method", "method (ranked)"), ("reference", f"reference {TRUTH_LABEL}"),
                        ("ceiling", "noise ceiling (no method)")):
        if role in roles:
            marker, face, edge = _STYLE[role]
            ax.plot([], [], marker=marker, ls="none", markerfacecolor=face, markeredgecolor=edge, label=label)
    ax.legend(fontsize=7, loc="best", frameon=False)


# ------------------------------------------------------------------------------------------ the terminal view


def frontier_lines(points: list[Point], *, width: int = 80, chance: float = -math.inf) -> list[str]:
    """One line per point, fastest first: name, seconds per example, value [interval], a text bar, its tag.

    ``0.45 [0.40, 0.50]`` is the value with its 95% interval; the bar spans the values shown, from the lowest (or
    0, if lower) to the highest; the tag is ``*front*`` for the Pareto front, ``(truth)`` for reference rows and
    ``(ceiling)`` for the ceiling. Every line is at most ``width`` characters: names are shortened with an
    ellipsis, the bar is dropped before anything else, and a number is never cut (a width too narrow for the
    numbers is refused)."""
    if not points:
        return []
    ordered = sorted(points, key=_order)
    front = set(pareto_front(points, above=chance))
    cells = [(_seconds(p.seconds), _value(p.value), _interval(p.lo, p.hi), _tag(p, front)) for p in ordered]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    names = max(len(p.method) for p in ordered)
    room = width - sum(widths) - len("  " " s/ex  " " " "  ")  # the numbers, their gaps and unit, the tag's gap
    bar = BAR_CELLS + 4 if room - (BAR_CELLS + 4) >= min(names, 6) else 0  # "  |####    |"
    name_w = min(names, room - bar)
    if name_w < min(names, 2):
        raise AdvdlaError(f"a width of {width} columns cannot hold the frontier's numbers (they need "
                          f"{width - room + 2}): give a larger width")
    scale = _bar_scale([p.value for p in ordered])
    lines = []
    for p, (sec, val, ci, tag) in zip(ordered, cells):
        text = (f"{_shorten(p.method, name_w):<{name_w}}  {sec:>{widths[0]}} s/ex  {val:>{widths[1]}} "
                f"{ci:<{widths[2]}}")
        if bar:
            text += f"  {_bar(p.value, scale)}"
        lines.append(f"{text}  {tag}".rstrip())
    return lines


def _shorten(name: str, width: int) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _seconds(s: float) -> str:
    """Seconds with three significant figures and no exponent in the usual range (0.00123, 0.456, 12.3, 1234)."""
    if not math.isfinite(s):
        return "n/a"
    if s >= 100 or s == 0:
        return f"{s:.0f}"
    if s >= 1e-4:
        digits = max(0, 2 - math.floor(math.log10(abs(s))))
        return f"{s:.{digits}f}"
    return f"{s:.1e}"


def _value(v: float) -> str:
    return f"{v:.2f}" if math.isfinite(v) else "n/a"


def _interval(lo: float, hi: float) -> str:
    return f"[{lo:.2f}, {hi:.2f}]" if math.isfinite(lo) and math.isfinite(hi) else ""


def _tag(p: Point, front: set[str]) -> str:
    if p.role == "reference":
        return "(truth)"
    if p.role == "ceiling":
        return "(ceiling)"
    return "*front*" if p.method in front else ""


def _bar_scale(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return (0.0, 1.0)
    lo, hi = min(0.0, min(finite)), max(finite)
    return (lo, hi if hi > lo else lo + 1.0)


def _bar(v: float, scale: tuple[float, float]) -> str:
    """``|####    |``: the value's place between the scale's ends, in :data:`BAR_CELLS` cells."""
    if not math.isfinite(v):
        return "|" + " " * BAR_CELLS + "|"
    lo, hi = scale
    n = round(BAR_CELLS * min(max((v - lo) / (hi - lo), 0.0), 1.0))
    return "|" + "#" * n + " " * (BAR_CELLS - n) + "|"


# ------------------------------------------------------------------------------------------- from the board


def points_of(rows: list[dict[str, Any]], *, metric: str = "mcc@te_adv") -> list[Point]:
    """The frontier's points from one table's ranked rows (:func:`advdla.leaderboard.ranked_rows`): seconds per
    example against ``metric`` (a row key, the primary metric on adversarial examples by default)."""
    out = []
    for r in rows:
        if r["role"] not in ROLES:
            continue  # the chance row is a line, not a point
        lo, hi = r.get(f"{metric}_ci") or (math.nan, math.nan)
        out.append(Point(r["method"], float(r.get("seconds_per_example", math.nan)), float(r.get(metric, math.nan)),
                         math.nan if lo is None else float(lo), math.nan if hi is None else float(hi), r["role"]))
    return out


def write_frontiers(tables: dict[tuple[str, int, str], list[dict[str, Any]]], directory: str | os.PathLike
                    ) -> dict[tuple[str, int], str]:
    """One frontier PNG per suite version, from its test table (else its dev table), written into ``directory`` as
    ``frontier-SUITE-vVERSION.png``; returns (suite, version) -> that file name, for the page's image links."""
    chosen: dict[tuple[str, int], tuple[str, list[dict[str, Any]]]] = {}
    for (suite, version, split), rows in sorted(tables.items()):
        if split == "test" or (suite, version) not in chosen:
            chosen[(suite, version)] = (split, rows)
    out = {}
    for (suite, version), (split, rows) in chosen.items():
        points = [p for p in points_of(rows) if not math.isnan(p.value)]
        if not points:
            continue
        name = f"frontier-{suite}-v{version}.png"
        ceiling = next((p.value for p in points if p.role == "ceiling"), None)
        frontier_figure(points, Path(directory) / name, ceiling=ceiling,
                        title=f"{suite} v{version}, {split} split: cost against importance MCC (adversarial examples)")
        out[(suite, version)] = name
    return out
