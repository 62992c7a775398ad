"""``advdla score --suite PATH --methods all|dla,atp,...``: score attribution methods against a suite's ground truth.

Verifies the suite first (a suite that fails verification stops with one line, exit 2), loads the suite's model,
runs each method over the chosen split (:func:`advdla.scoring.score_suite`), and prints one row per
(method, kind) with every metric and its bootstrap 95% interval. ``--out FILE`` writes one self-describing
:class:`~advdla.scoring.ResultRecord` per method as a JSON list (atomically). A method that fails is named in
one line and skipped. With ``--out`` each method's estimates are checkpointed after every batch
(:mod:`advdla.scoring.checkpoint`), so the same command after a kill resumes instead of starting over.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from advdla.atomic import check_writable
from advdla.commands.methods import add_plugin_arg, load_all_plugins
from advdla.commands.names import resolve_suite
from advdla.errors import AdvdlaError, did_you_mean, fix_hint
from advdla.report import add_device_arg, add_format_arg, emit, err_console, progress_bar

SCORE_SPLITS = ("dev", "test", "all")  # advdla.scoring.harness.SCORE_SPLITS, here to refuse a typo before any import
# The score table's columns, most important first: those that do not fit the terminal are left out from the right.
FIRST_COLUMNS = ("method", "kind", "n", "mcc@te", "mcc@de", "target_error@te", "false_alarm@te", "time_s")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("score", help="score attribution methods against a suite's ground truth")
    p.add_argument("--suite", required=True, help="a suite's name (`advdla suite list`) or folder")
    p.add_argument("--methods", default="all", help="'all' or a comma-separated list, e.g. dla,atp (default: all; "
                   "`advdla methods list` names them, with their parameters)")
    p.add_argument("--split", default="dev", help="which examples to score: dev, test or all (default: dev)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="score only N examples of the split, adversarial and natural alternately: a smoke run "
                   "(not for the leaderboard: refused with --out)")
    p.add_argument("--out", default=None, help="write the result records (JSON list, one per method) to this file")
    p.add_argument("--batch-size", type=int, default=8, help="examples per method call (default: 8)")
    p.add_argument("--top-k", type=int, default=3, help="k of topk_recall and the fooled rate (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="seed for seeded methods and the bootstrap (default: 0)")
    p.add_argument("--param", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="an option of one method over its registered default, e.g. ig.steps=2 (repeatable; the "
                   "record keeps what each method ran with; `advdla methods info NAME` lists a method's options)")
    p.add_argument("--verify-sample", type=int, default=3,
                   help="examples whose ground truth is re-derived before scoring (default: 3; 0 keeps the other "
                   "checks: files, fingerprint, model, splits; for a suite just verified, as build-and-score.sh does)")
    add_plugin_arg(p)
    add_device_arg(p)
    add_format_arg(p)
    p.set_defaults(func=cmd_score)


def cmd_score(args: Any) -> int:
    _check_options(args)  # before the heavy imports: a typo costs no start-up time
    args.suite = str(resolve_suite(args.suite))
    if args.out:
        check_writable(args.out, flag="--out", kind="file")  # before any work: the records are written last
    # Lazy: the scoring stack imports torch and transformer_lens (about 4 s), which `advdla --help` must not pay.
    from advdla.methods import resolve_methods
    from advdla.scoring import score_suite, write_records

    load_all_plugins(args, "score")
    names = resolve_methods(args.methods)
    params = method_params(args.param, names)
    suite, model, examples = _open(args)
    checkpoint, made = _checkpoints(args, suite.manifest)
    with progress_bar(transient=True) as tick:
        records = score_suite(model, suite.manifest, examples, names, split=args.split, batch_size=args.batch_size,
                              k=args.top_k, seed=args.seed, device=args.device, params=params, warn=_warn,
                              progress=tick, checkpoint=checkpoint if args.out else None)
    if args.out:
        write_records(args.out, records)
        for rec in records:  # the records hold it all now
            made[rec.method["name"]].remove()
    payload = {"records": [r.to_dict() for r in records]}
    smoke = f" (--limit {args.limit}: a smoke run)" if args.limit else ""
    title = (f"{suite.manifest.get('name')} v{suite.manifest.get('version')}, {args.split} split, "
             f"{len(examples)} examples{smoke} (mean [95% CI]; time_s excludes loading the model)")
    emit(payload, args.format, tables=[(title, table_rows(records))])
    if args.out:
        err_console.print(f"advdla score: wrote {len(records)} result records to {args.out} (add them to a "
                          f"board: `advdla leaderboard add {args.out} [--dir DIR]`)", highlight=False, markup=False,
                          soft_wrap=True)
    return 0 if records else 1


def _check_options(args: Any) -> None:
    """The numeric options and the split, checked before anything loads."""
    if args.limit is not None and args.out:
        raise AdvdlaError("--limit makes a smoke run, whose records must not reach the leaderboard: leave out --out "
                          "(or --limit)")
    for flag, value, least in (("--batch-size", args.batch_size, 1), ("--top-k", args.top_k, 1),
                               ("--verify-sample", args.verify_sample, 0),
                               ("--limit", 1 if args.limit is None else args.limit, 1)):
        if value < least:
            raise AdvdlaError(f"{flag} must be at least {least}, got {value}")
    if args.split not in SCORE_SPLITS:
        raise AdvdlaError(f"unknown split {args.split!r}: use one of {', '.join(SCORE_SPLITS)}"
                          f"{did_you_mean(args.split, SCORE_SPLITS)}")


def _open(args: Any) -> tuple[Any, Any, list[Any]]:
    """The verified suite, its model and the examples of ``--split``; ``--top-k`` checked against their panels."""
    from advdla.scoring import open_suite, split_examples  # lazy, as in cmd_score

    with fix_hint(f"the suite at {args.suite} is damaged or was edited: rebuild it (`advdla suite build CONFIG.yaml "
                  f"--force`) or restore it"):
        suite, model = open_suite(args.suite, device=args.device, verify_sample=args.verify_sample)
        examples = split_examples(suite, args.split)
    if args.limit:
        examples = smoke_subset(examples, args.limit)
    smallest = min(len(e.truth.panel) for e in examples)
    if args.top_k >= smallest:
        raise AdvdlaError(f"--top-k {args.top_k} leaves nothing outside the top k: the smallest panel of the "
                          f"{args.split} split has {smallest} components; use at most {smallest - 1}")
    return suite, model, examples


def smoke_subset(examples: list[Any], n: int) -> list[Any]:
    """The first ``n`` examples taking adversarial and natural ones in turn (a smoke run sees both kinds)."""
    by_kind = [[e for e in examples if e.kind == kind] for kind in ("adversarial", "natural")]
    mixed = [e for pair in zip(*by_kind) for e in pair]
    taken = {id(e) for e in mixed}  # by identity: examples hold tensors, which == compares elementwise
    rest = [e for e in examples if id(e) not in taken]
    return (mixed + rest)[:n]


def _checkpoints(args: Any, manifest: dict[str, Any]) -> tuple[Callable[[Any], Any], dict[str, Any]]:
    """The harness's checkpoint factory for ``--out`` and what it made (method name -> its checkpoint), so that the
    checkpoints go once the records are written."""
    from advdla.scoring.checkpoint import checkpoint_for  # lazy, as in cmd_score

    made: dict[str, Any] = {}

    def checkpoint(run: Any) -> Any:
        made[run.name] = checkpoint_for(args.out, run.name, version=run.version, params=run.params,
                                        manifest=manifest, split=args.split)
        return made[run.name]

    return checkpoint, made


def method_params(values: list[str], names: list[str]) -> dict[str, dict[str, Any]]:
    """``--param METHOD.KEY=VALUE`` options as ``{method: {key: value}}`` (VALUE read as JSON, else a string),
    each checked by building the method with it before any work."""
    from advdla.methods import get_method, method_spec  # lazy, as in cmd_score

    out: dict[str, dict[str, Any]] = {}
    for item in values:
        target, sep, raw = item.partition("=")
        method, dot, key = target.rpartition(".")
        if not (sep and dot and method and key):
            raise AdvdlaError(f"--param {item!r} is not METHOD.KEY=VALUE (for example ig.steps=2)")
        if method not in names:
            raise AdvdlaError(f"--param {item!r} names {method!r}, which is not among the methods scored: "
                              f"{', '.join(names)}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        out.setdefault(method, {})[key] = value
    for method, opts in out.items():
        get_method(method, seed=0, **{**method_spec(method).params, **opts})  # a bad key or value stops here
    return out


def _warn(message: str) -> None:
    err_console.print(f"advdla score: skipped: {message}", highlight=False, markup=False)


def _cell(m: dict[str, Any]) -> str:
    value, lo, hi = (float("nan") if m.get(k) is None else m[k] for k in ("value", "lo", "hi"))
    if value != value:
        return "-"
    return f"{value:.2f}" + ("" if lo != lo else f" [{lo:.2f},{hi:.2f}]")


def table_rows(records: list[Any]) -> list[dict[str, Any]]:
    """One row per (method, kind): each ``metric@against`` (against the TE, or the DE for a direct-effect method) as
    'value [lo, hi]' (no interval where the examples come from one source file)."""
    out = []
    for rec in records:
        by_kind: dict[str, dict[str, Any]] = {}
        for m in rec.metrics:
            row = by_kind.setdefault(m["kind"], {"method": rec.method["name"], "kind": m["kind"], "n": m["n"]})
            row[f"{m['metric']}@{m['against']}"] = _cell(m)
        for row in by_kind.values():
            row["time_s"] = f"{rec.wall_time_s:.2f}"
        out.extend(by_kind.values())
    return [{**{c: r[c] for c in FIRST_COLUMNS if c in r}, **r} for r in out]
