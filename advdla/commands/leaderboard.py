"""``advdla leaderboard [show|add FILE...|render|chance]``: rank result records, add new ones, write LEADERBOARD.md,
test the uninformed methods against chance.

The work is :mod:`advdla.leaderboard`'s; this module parses the arguments and prints. It imports that package
inside the functions that use it: the package reads method metadata (:mod:`advdla.methods`, which imports torch,
about 4 s), which ``advdla --help`` and ``advdla run --help`` (:mod:`advdla.commands.run` imports :func:`show`)
must not pay for.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from advdla.atomic import check_writable, nan_to_none
from advdla.commands.names import leaderboard_dir, suites_dir_for
from advdla.errors import AdvdlaError, did_you_mean
from advdla.report import console, err_console, table


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "leaderboard",
        help="rank attribution methods from result records; add records; render LEADERBOARD.md",
        description="show (default): ranked tables per suite and split, stale records apart. "
        "add FILE...: validate result records (from `advdla score --out`) and add them. "
        "render: write DIR/LEADERBOARD.md from the records. "
        "chance: test the uninformed methods (--methods) against each metric's chance level in every cell, "
        "Holm-corrected over the cells.",
    )
    p.add_argument("action", nargs="?", choices=("show", "add", "render", "chance"), default="show",
                   help="default: show")
    p.add_argument("files", nargs="*", metavar="FILE", help="result record JSON files (for add)")
    p.add_argument("--dir", default=None, help="the leaderboard folder (default: $ADVDLA_LEADERBOARD, else "
                   "./leaderboard where it exists, else the project's leaderboard/)")
    p.add_argument("--suites", default=None, help="folder of suites to check fingerprints against (default: suites/ "
                   "next to --dir where it exists, else the project's suites/)")
    p.add_argument("--suite", default=None, help="only this suite (by name)")
    p.add_argument("--split", choices=("dev", "test", "all"), default=None, help="only this split")
    p.add_argument(
        "--sort",
        default="mcc@te",
        help="rank by this metric on adversarial examples, METRIC@te or METRIC@de (@te when omitted); "
        "'GROUP.METRIC' for another group (compensation, baseline, mixed, natural, all) (default: mcc@te, "
        "importance MCC against the total effect)",
    )
    p.add_argument("--wide", action="store_true", help="every column (the markdown page's), not the 80-column view")
    p.add_argument("--frontier", action="store_true",
                   help="under each table, its cost-accuracy frontier: seconds per example against importance MCC")
    p.add_argument("--methods", default="random,constant",
                   help="for chance: the uninformed methods to test, comma-separated (default: random,constant)")
    p.add_argument("--format", choices=("table", "markdown", "json"), default="table", help="default: table")
    p.set_defaults(func=cmd_leaderboard)


def cmd_leaderboard(args: Any) -> int:
    args.dir = str(leaderboard_dir(args.dir, create=args.action == "add"))
    if args.suites is None and (args.action == "add" or Path(args.dir).is_dir()):
        args.suites = str(suites_dir_for(Path(args.dir)))
    if args.action == "add":
        return _add(args)
    if args.files:
        raise AdvdlaError(f"files are only taken by `advdla leaderboard add`, got {' '.join(args.files)}")
    _check_filters(args)
    if args.action == "render":
        from advdla.leaderboard import MARKDOWN_NAME, write_markdown

        check_writable(Path(args.dir) / MARKDOWN_NAME, flag="--dir", kind="file")
        print(write_markdown(args.dir, suites_dir=args.suites, sort=args.sort))
        return 0
    if args.action == "chance":
        return _chance(args)
    show(args.dir, suites_dir=args.suites, suite=args.suite, split=args.split, sort=args.sort, fmt=args.format,
         wide=args.wide, frontier=args.frontier)
    return 0


def _check_filters(args: Any) -> None:
    """A missing or empty leaderboard folder, a --suite or --split that matches no record and an unknown --sort are
    errors (with a did-you-mean), not an empty table."""
    from advdla.leaderboard import load_board, ranked_rows

    d = Path(args.dir)
    if not d.is_dir():
        raise AdvdlaError(f"no leaderboard folder {d}: add result records (from `advdla score --out FILE`) with "
                          f"`advdla leaderboard add FILE --dir {d}`")
    board = load_board(d, suites_dir=args.suites)
    entries = board.current + [e for e, _ in board.stale]
    if not entries:
        why = f" ({len(board.problems)} unreadable: {board.problems[0]})" if board.problems else ""
        raise AdvdlaError(f"no records in {d}{why}: add some with `advdla leaderboard add FILE --dir {d}`")
    for flag, value, attr in (("--suite", args.suite, "suite"), ("--split", args.split, "split")):
        known = sorted({getattr(e, attr) for e in entries})
        if value is not None and value not in known:
            hint = did_you_mean(value, known) or (f" Did you mean {known[0]!r}?" if len(known) == 1 else "")
            raise AdvdlaError(f"{flag} {value} matches no record in {d}: it holds {', '.join(known)}.{hint}")
        entries = [e for e in entries if value is None or getattr(e, attr) == value]
    ranked_rows(entries, sort=args.sort)  # an unknown group or metric stops here, with the known ones


def _add(args: Any) -> int:
    from advdla.leaderboard import add_record, check_current, parse_record

    if not args.files:
        raise AdvdlaError("give the result record files to add: advdla leaderboard add FILE [FILE...]")
    if args.suites and not Path(args.suites).is_dir():
        raise AdvdlaError(f"--suites {args.suites} is not a folder: give the folder that holds the suites "
                          "(NAME/manifest.json), or leave it out for suites/ next to --dir (else the project's)")
    # every record is checked before any is written: a bad file among several adds none of them
    suites_dir = Path(args.suites)  # cmd_leaderboard chose the default
    records = []
    for f in args.files:
        try:
            data = json.loads(Path(f).read_text())
        except OSError as exc:
            raise AdvdlaError(f"cannot read {f}: {exc.strerror}; give a file written by `advdla score --out`") from None
        except ValueError as exc:
            raise AdvdlaError(f"{f} is not valid JSON ({exc}): give a file written by `advdla score --out`") from None
        if data == []:
            raise AdvdlaError(f"{f} holds no result records: give a file written by `advdla score --out`")
        for record in data if isinstance(data, list) else [data]:  # score --out writes a list; one record also works
            try:
                entry = parse_record(record)
                reason = check_current(entry, suites_dir)
            except AdvdlaError as exc:
                raise AdvdlaError(f"{f}: {exc}") from None
            if reason:
                raise AdvdlaError(f"{f}: record for {entry.method} not added: {reason}")
            records.append(record)
    check_writable(args.dir, flag="--dir")
    for record in records:
        print(add_record(record, args.dir, suites_dir=args.suites))
    return 0


def _chance(args: Any) -> int:
    """Print the chance check over the current records (``--suite``, ``--split`` filter them); exit 1 where a cell
    is beyond chance after Holm, so a script can gate on it."""
    from advdla.leaderboard import load_board
    from advdla.leaderboard.chance import chance_lines, check_board

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    board = load_board(args.dir, suites_dir=args.suites, suite=args.suite, split=args.split)
    found = {e.method for e in board.current}
    if not found & set(methods):
        raise AdvdlaError(f"--methods {args.methods}: no current record of {', '.join(methods)} in {args.dir}; "
                          f"score them with `advdla score --suite NAME --methods {','.join(methods)} --out FILE`")
    check = check_board(board.current, methods=methods)
    if args.format == "json":
        cells = [{**r.labels, "metric": r.metric, "n": r.n, "sources": r.sources, "mean": r.mean, "chance": r.chance,
                  "side": r.side, "p": r.p, "p_holm": r.p_holm, "beyond": r.beyond(check.alpha)} for r in check.results]
        print(json.dumps(nan_to_none({"passes": check.passes, "alpha": check.alpha, "tested": len(check.tested),
                                      "beyond": len(check.beyond), "raw_beyond": check.raw_beyond,
                                      "expected": check.expected, "rejectable": check.rejectable,
                                      "skipped": check.skipped, "cells": cells}), indent=2))
    else:
        for line in chance_lines(check, methods=methods):
            console.print(line, highlight=False, markup=False)
    return 0 if check.passes else 1


def show(
    directory: str | Path,
    *,
    suites_dir: str | Path | None = None,
    suite: str | None = None,
    split: str | None = None,
    sort: str = "mcc@te",
    fmt: str = "table",
    wide: bool = False,
    frontier: bool = False,
) -> None:
    """Print the leaderboard in ``directory``: rich tables (or markdown / JSON), stale records and problems apart."""
    from advdla.leaderboard import default_suites_dir, groups, load_board, ranked_rows, render_markdown

    suites_dir = suites_dir or default_suites_dir(Path(directory))
    board = load_board(directory, suites_dir=suites_dir, suite=suite, split=split)
    if fmt == "markdown":
        print(render_markdown(board, sort=sort, suites_dir=suites_dir))
        return
    grouped = groups(board.current)
    ranked = {k: ranked_rows(v, sort=sort) for k, v in grouped.items()}
    if fmt == "json":
        _print_json(board, ranked, suites_dir)
        return
    if not ranked:
        where = f" for suite {suite}" if suite else ""
        err_console.print(f"no current records in {directory}{where}: score a suite with `advdla score --suite PATH "
                          f"--out FILE`, then `advdla leaderboard add FILE --dir {directory}`")
    judged = board if split is None else load_board(directory, suites_dir=suites_dir, suite=suite)  # both splits
    _print_tables(judged.current, ranked, sort=sort, wide=wide, suites_dir=suites_dir, frontier=frontier)
    for e, why in board.stale:
        err_console.print(f"[yellow]stale[/]: {e.path.name if e.path else e.method}: {why}")
    for line in board.problems:
        err_console.print(f"[red]skipped[/]: {line}")
    sys.stdout.flush()


def _print_json(board: Any, ranked: dict[tuple, list[dict[str, Any]]], suites_dir: Any) -> None:
    """One JSON document: per suite version its verdict (every tested hypothesis), per table its rows; the stale
    records; the problems."""
    from advdla.leaderboard import evaluate_hypotheses, suite_versions

    verdicts = [{"suite": s, "version": v, **evaluate_hypotheses(entries, suites_dir=suites_dir)}
                for (s, v), entries in suite_versions(board.current).items()]
    for item in verdicts:
        for res in item["results"]:
            res["hypothesis"] = vars(res["hypothesis"])
    boards = [{"suite": s, "version": v, "split": sp, "rows": rows} for (s, v, sp), rows in ranked.items()]
    stale = [{"file": e.path.name if e.path else None, "reason": why} for e, why in board.stale]
    print(json.dumps(nan_to_none({"verdicts": verdicts, "boards": boards, "stale": stale,
                                  "problems": board.problems}), indent=2, default=str))


def _counts(rows: list[dict[str, Any]]) -> str:
    """The table's example counts: those of its widest row (the ceiling may be computed on a subset)."""
    r0 = max(rows, key=lambda r: (r.get("n_adv") or 0) + (r.get("n_nat") or 0))
    return (f"{r0.get('n_adv') or 0} adversarial ({r0.get('n_comp') or 0} compensation, {r0.get('n_base') or 0} "
            f"baseline, {r0.get('n_mixed') or 0} mixed) + {r0.get('n_nat') or 0} natural")


def _print_tables(entries: list[Any], ranked: dict[tuple, list[dict[str, Any]]], *, sort: str, wide: bool,
                  suites_dir: Any, frontier: bool = False) -> None:
    """One rich table per (suite, version, split) (80 columns unless ``wide``; with ``frontier`` its cost-accuracy
    frontier below it), then each suite version's verdict."""
    from advdla.leaderboard import display_rows, suite_versions, verdict
    from advdla.leaderboard.frontier import frontier_lines, points_of

    for (s, v, sp), rows in ranked.items():
        console.print(
            table(
                display_rows(rows, compact=not wide),
                title=f"{s} v{v} · {sp} · {_counts(rows)} · by {sort}\n"
                "mean [95% CI over source files]; vs DLA = paired difference (* excludes 0)",
            )
        )
        if frontier:
            for line in frontier_lines(points_of(rows), width=min(console.width, 120), chance=0.0):
                console.print(line, highlight=False, markup=False)
    for (s, v), group in suite_versions(entries).items():
        console.print(f"[bold]{s} v{v}[/]", highlight=False)
        for line in verdict(group, suites_dir=suites_dir):
            console.print(line, highlight=False, markup=False)
