"""Rendering: ranked rows as table cells, and the whole leaderboard as the markdown page ``LEADERBOARD.md``.

Context: the same ranked rows (:func:`advdla.leaderboard.ranking.ranked_rows`) feed three outputs: the terminal's
narrow tables (``advdla leaderboard``), the markdown page (``advdla leaderboard render``) and JSON (which takes the
rows as they are). :func:`display_rows` turns rows into cells through the :data:`~advdla.leaderboard.columns.COLUMNS`
entries; :func:`render_markdown` lays out the page: the generated verdict per suite, the prose that explains the
columns (:func:`intro`, assembled from the columns' notes), one table per (suite, version, split), then the stale
records and the unreadable files.

Intuition: the page is a pure function of the record folder, so rendering it twice gives the same bytes and a
reviewer can diff it; nothing on it is written by hand except the fixed prose below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from advdla.atomic import write_text_atomic
from advdla.leaderboard.chance import UNINFORMED, chance_lines, check_board
from advdla.leaderboard.columns import COLUMNS
from advdla.leaderboard.frontier import write_frontiers
from advdla.leaderboard.ranking import groups, ranked_rows, sort_key
from advdla.leaderboard.records import Board, Entry, default_suites_dir, folder_lock, load_board
from advdla.leaderboard.verdict import verdict

__all__ = ["MARKDOWN_NAME", "display_rows", "intro", "render_markdown", "suite_versions", "write_markdown"]

MARKDOWN_NAME = "LEADERBOARD.md"
# The page's fixed prose around the columns' notes: what is scored, how values read, what the group suffixes mean.
PREAMBLE = (
    "Attribution methods scored against causal ground truth on advdla suites: each component's total effect TE (its "
    "output resampled, averaged over the truth's resamples) and direct effect DE. Methods see only their own "
    "resamples, disjoint from the truth's. Every method is scored against the TE (does the component matter?) and "
    "against its own estimand (DE for DLA and its variants). Values are means over examples with cluster-bootstrap "
    "95% intervals (clusters: source files); *adv* = adversarial examples (prompts on which DLA misleads), split by "
    "mechanism: *comp* = compensation (later components undo the target's direct effect), *base* = baseline (DLA's "
    "zero baseline overstates an output that hardly depends on the context); *nat* = natural corpus examples."
)
CLOSING = "Rendered by `advdla leaderboard render`; the verdict sentences are generated from the records."


def display_rows(rows: list[dict[str, Any]], *, compact: bool = False) -> list[dict[str, str]]:
    """Rows as strings, ``0.52 [0.41, 0.63]`` (``compact``: the terminal's columns, the interval on a second line).

    A column is shown when some row has its key; the ceiling's and sanity rows' method cells say what they are;
    paired differences from DLA are marked ``*`` where their interval excludes 0.
    """
    shown = [c for c in COLUMNS.values() if any(c.key in r for r in rows) and (not compact or c.compact_title)]
    return [{(c.compact_title if compact else c.title): c.cell(r, c.key, compact) for c in shown} for r in rows]


def intro() -> str:
    """The prose under the verdict: :data:`PREAMBLE`, each column's note in ``note_rank`` order, :data:`CLOSING`."""
    notes = [c.note for c in sorted(COLUMNS.values(), key=lambda c: c.note_rank) if c.note]
    return " ".join([PREAMBLE, *notes, CLOSING])


def render_markdown(board: Board, *, sort: str = "mcc@te", suites_dir: str | os.PathLike | None = None,
                    figures: dict[tuple[str, int], str] | None = None) -> str:
    """The leaderboard as markdown: per suite version its verdict (the pre-registered hypotheses on dev and test) and
    its cost-accuracy figure (``figures``: (suite, version) -> a path relative to the page), then one table per
    (suite, version, split), then stale records and problems."""
    lines = ["# advdla leaderboard", ""]
    for (suite, version), entries in suite_versions(board.current).items():
        said = verdict(entries, suites_dir=suites_dir)
        lines += [f"**{suite} v{version}.** {said[0]}", "", *[f"- {line}" for line in said[1:]], ""]
        if figures and (suite, version) in figures:
            lines += [f"![cost against importance MCC, {suite} v{version}]({figures[(suite, version)]})", ""]
    lines += _chance_section(board.current)
    lines += [intro(), "", f"Methods ranked by {sort} ({sort_key(sort)[0]} examples).", ""]
    for (suite, version, split), entries in groups(board.current).items():
        fp = entries[0].suite_fingerprint
        lines += [f"## {suite} v{version}, {split} split", "", f"Suite fingerprint `{fp[:16]}`.", ""]
        lines += _md_table(display_rows(ranked_rows(entries, sort=sort))) + [""]
    if not board.current:
        lines += ["No current records.", ""]
    if board.stale:
        lines += ["## Stale records (their suite has changed; not ranked)", ""]
        lines += [f"- {e.method} v{e.method_version} on {e.suite} {e.split}: {why}" for e, why in board.stale] + [""]
    if board.problems:
        lines += ["## Unreadable records", ""] + [f"- {p}" for p in board.problems] + [""]
    return "\n".join(lines)


def _chance_section(entries: list[Entry]) -> list[str]:
    """The uninformed methods against chance over every suite (:mod:`advdla.leaderboard.chance`), where any was
    scored: one check, Holm over all its cells."""
    if not any(e.method in UNINFORMED for e in entries):
        return []
    said = chance_lines(check_board(entries))
    return ["**Uninformed methods against chance.** " + said[0], "", *[f"- {line.strip()}" for line in said[1:]], ""]


def suite_versions(entries: list[Entry]) -> dict[tuple[str, int], list[Entry]]:
    """Entries by (suite, suite version), every split together: what one verdict speaks for."""
    out: dict[tuple[str, int], list[Entry]] = {}
    for e in entries:
        out.setdefault((e.suite, e.suite_version), []).append(e)
    return dict(sorted(out.items()))


def _md_table(rows: list[dict[str, str]]) -> list[str]:
    if not rows:
        return []
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    return out + ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows]


def write_markdown(
    directory: str | os.PathLike, *, suites_dir: str | os.PathLike | None = None, sort: str = "mcc@te"
) -> Path:
    """Render ``directory/LEADERBOARD.md`` and its cost-accuracy figures (``frontier-*.png``, one per suite version)
    from the records in it (atomically, under the folder's lock)."""
    directory = Path(directory)
    suites_dir = suites_dir or default_suites_dir(directory)
    board = load_board(directory, suites_dir=suites_dir)
    with folder_lock(directory):
        tables = {key: ranked_rows(entries, sort=sort) for key, entries in groups(board.current).items()}
        figures = write_frontiers(tables, directory)
        text = render_markdown(board, sort=sort, suites_dir=suites_dir, figures=figures)
        path = directory / MARKDOWN_NAME
        write_text_atomic(path, text)
    return path
