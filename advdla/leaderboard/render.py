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
from advdla.leaderboard.columns import COLUMNS
from advdla.leaderboard.ranking import groups, ranked_rows, sort_key
from advdla.leaderboard.records import Board, Entry, folder_lock, load_board
from advdla.leaderboard.verdict import verdict

__all__ = ["MARKDOWN_NAME", "display_rows", "intro", "render_markdown", "write_markdown"]

MARKDOWN_NAME = "LEADERBOARD.md"
# The page's fixed prose around the columns' notes: what is scored, how values read, what the group suffixes mean.
PREAMBLE = (
    "Attribution methods scored against causal ground truth (each component's total effect: its output resampled, "
    "averaged over the truth's resamples) on advdla suites. Methods see only their own resamples, disjoint from "
    "the truth's. Values are means over examples with cluster-bootstrap 95% intervals (clusters: the base "
    "documents); *adv* = adversarial examples (prompts on which DLA misleads), split by mechanism: *comp* = "
    "compensation (later components undo the target's direct effect), *base* = baseline (DLA's zero baseline "
    "overstates an output that hardly depends on the context); *nat* = natural corpus examples."
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


def render_markdown(board: Board, *, sort: str = "spearman") -> str:
    """The leaderboard as markdown: the generated verdict, then one table per (suite, version, split), then stale
    records and problems."""
    lines = ["# advdla leaderboard", ""]
    for (suite, version, split), entries in _headline_groups(board):
        lines += [f"**{suite} v{version}, {split} split.** " + " ".join(verdict(entries)), ""]
    lines += [intro(), "", f"Methods ranked by {sort} ({sort_key(sort)[0]} examples).", ""]
    for (suite, version, split), entries in groups(board.current).items():
        fp = entries[0].suite_fingerprint
        lines += [f"## {suite} v{version}, {split} split", "", f"Suite fingerprint `{fp[:16]}`.", ""]
        lines += [" ".join(verdict(entries)), ""]
        lines += _md_table(display_rows(ranked_rows(entries, sort=sort))) + [""]
    if not board.current:
        lines += ["No current records.", ""]
    if board.stale:
        lines += ["## Stale records (their suite has changed; not ranked)", ""]
        lines += [f"- {e.method} v{e.method_version} on {e.suite} {e.split}: {why}" for e, why in board.stale] + [""]
    if board.problems:
        lines += ["## Unreadable records", ""] + [f"- {p}" for p in board.problems] + [""]
    return "\n".join(lines)


def _headline_groups(board: Board) -> list[tuple[tuple[str, int, str], list[Entry]]]:
    """Per suite (latest version), the split the verdict speaks for: test if scored, else all, else dev."""
    grouped = groups(board.current)
    out = []
    for suite in sorted({s for s, _, _ in grouped}):
        version = max(v for s, v, _ in grouped if s == suite)
        for split in ("test", "all", "dev"):
            if (suite, version, split) in grouped:
                out.append(((suite, version, split), grouped[(suite, version, split)]))
                break
    return out


def _md_table(rows: list[dict[str, str]]) -> list[str]:
    if not rows:
        return []
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    return out + ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows]


def write_markdown(
    directory: str | os.PathLike, *, suites_dir: str | os.PathLike | None = None, sort: str = "spearman"
) -> Path:
    """Render ``directory/LEADERBOARD.md`` from the records in it (atomically, under the folder's lock)."""
    directory = Path(directory)
    text = render_markdown(load_board(directory, suites_dir=suites_dir), sort=sort)
    path = directory / MARKDOWN_NAME
    with folder_lock(directory):
        write_text_atomic(path, text)
    return path
