"""``advdla score --suite PATH --methods all|dla,atp,...``: score attribution methods against a suite's ground truth.

Verifies the suite first (a suite that fails verification stops with one line, exit 2), loads the suite's model,
runs each method over the chosen split, and prints one row per (method, kind) with every metric and its
bootstrap 95% interval. ``--out FILE`` writes one self-describing :class:`~advdla.scoring.ResultRecord` per
method as a JSON list (atomically). A method that fails is named in one line and skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advdla.errors import AdvdlaError
from advdla.report import add_format_arg, emit, err_console

SPLITS = ("dev", "test", "all")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("score", help="score attribution methods against a suite's ground truth")
    p.add_argument("--suite", required=True, help="path of a suite written by `advdla suite`")
    p.add_argument("--methods", default="all", help="'all' or a comma-separated list, e.g. dla,atp (default: all)")
    p.add_argument("--split", choices=SPLITS, default="dev", help="which examples to score (default: dev)")
    p.add_argument("--out", default=None, help="write the result records (JSON list, one per method) to this file")
    p.add_argument("--batch-size", type=int, default=8, help="examples per method call (default: 8)")
    p.add_argument("--top-k", type=int, default=3, help="k of topk_recall and the fooled rate (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="seed for seeded methods and the bootstrap (default: 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    add_format_arg(p)
    p.set_defaults(func=cmd_score)


def cmd_score(args: Any) -> int:
    from advdla.methods import resolve_methods

    if args.batch_size < 1 or args.top_k < 1:
        raise AdvdlaError("--batch-size and --top-k must be at least 1")
    names = resolve_methods(args.methods)
    suite, model = open_suite(args.suite, device=args.device)
    rows = split_rows(suite.dataset, args.split)
    records = score_suite(suite.manifest, rows, names, split=args.split, batch_size=args.batch_size, k=args.top_k,
                          seed=args.seed, device=args.device, model=model)
    if args.out:
        from advdla.scoring import write_records

        write_records(args.out, records)
    payload = {"records": [r.to_dict() for r in records]}
    emit(payload, args.format, tables=[(f"{suite.manifest.get('name')} v{suite.manifest.get('version')}, {args.split} split, "
                                        f"{len(rows)} examples (mean [95% CI])", table_rows(records))])
    return 0 if records else 1


def open_suite(path: str, *, device: str = "cpu") -> tuple[Any, Any]:
    """Load the suite at ``path`` and its model, then verify the suite on that model (AdvdlaError, one line, on any problem)."""
    if not Path(path).exists():
        raise AdvdlaError(f"no suite at {path}: give the folder written by `advdla suite`")
    try:
        from advdla.suite import load_suite, verify_suite
    except ImportError:
        raise AdvdlaError("this advdla has no suite support (advdla.suite is missing): update advdla") from None
    from advdla.models import load_model

    suite = load_suite(path)
    model = load_model(suite.manifest["model"], device=device)
    verify_suite(path, bridge=model)
    return suite, model


def split_rows(dataset: Any, split: str) -> list[dict[str, Any]]:
    rows = [dict(r) for r in dataset]
    chosen = rows if split == "all" else [r for r in rows if r.get("split") == split]
    if not chosen:
        raise AdvdlaError(f"the suite has no {split!r} examples: choose another --split")
    return chosen


def score_suite(manifest: dict[str, Any], rows: list[dict[str, Any]], names: list[str], *, split: str, batch_size: int = 8,
                k: int = 3, seed: int = 0, device: str = "cpu", model: Any = None) -> list[Any]:
    """Run and score ``names`` on ``rows``; one ResultRecord per method that succeeded (failures: one line on stderr)."""
    from advdla.models import load_model
    from advdla.scoring import make_record, run_methods

    model = model if model is not None else load_model(manifest["model"], device=device)
    rows = [{**r, "split": split} for r in rows]  # one record covers one split ('all' pools dev and test)
    frame, runs = run_methods(model, names, rows, batch_size=batch_size, seed=seed, k=k,
                              warn=lambda m: err_console.print(f"advdla score: skipped: {m}", highlight=False, markup=False))
    return [make_record(run, frame, manifest, split=split, k=k, n_examples=len(rows), device=device) for run in runs if not run.error]


def table_rows(records: list[Any]) -> list[dict[str, Any]]:
    """One row per (method, kind): each metric as 'value [lo, hi]'."""
    out = []
    for rec in records:
        by_kind: dict[str, dict[str, Any]] = {}
        for m in rec.metrics:
            row = by_kind.setdefault(m["kind"], {"method": rec.method["name"], "kind": m["kind"], "n": m["n"]})
            row[m["metric"]] = f"{m['value']:.2f} [{m['lo']:.2f},{m['hi']:.2f}]"
        for row in by_kind.values():
            row["time_s"] = f"{rec.wall_time_s:.2f}"
        out.extend(by_kind.values())
    return out
