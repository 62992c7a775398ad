"""``advdla suite build | verify | info | regenerate-test | list | show``: benchmark suites (see :mod:`advdla.suites`).

A suite is named by its folder or by its name (``planted-erasure``: :func:`advdla.commands.names.resolve_suite`);
``list`` and ``show`` are in :mod:`advdla.commands.suite_show`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from advdla.commands import suite_show
from advdla.commands.names import resolve_suite
from advdla.errors import AdvdlaError, fix_hint
from advdla.report import add_device_arg, add_format_arg, add_precision_arg, emit, progress_bar

# The suite stack (advdla.suites) imports torch and transformer_lens (about 4 s): each command imports it when it
# runs, so that `advdla --help` stays fast.


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("suite", help="build, verify and describe benchmark suites")
    sub = p.add_subparsers(dest="suite_command", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="build a suite from a YAML config (search, natural controls, ground truth)")
    b.add_argument("config", metavar="CONFIG.yaml", help="suite config, e.g. suites/planted-erasure.yaml")
    b.add_argument("--out", default=None, help="destination folder (default: suites/NAME next to the config)")
    b.add_argument(
        "--force", action="store_true", help="replace an existing suite (the old one is moved aside, not deleted)"
    )
    b.add_argument("--workers", type=_workers, default=1,
                   help="worker processes on this machine (default 1); they share --db, or a SQLite file beside --out")
    b.add_argument("--db", default=None, metavar="URL",
                   help="database shared by every worker of this build, on this machine or others: sqlite:///PATH or "
                        "postgresql://USER@HOST/DB (start the same command on each machine)")
    b.add_argument("--quiet-worker", action="store_true", help=argparse.SUPPRESS)  # a worker --workers started
    add_precision_arg(b, "of the screens (each target's search loop, the natural scan)")
    add_device_arg(b)
    b.set_defaults(func=cmd_build)
    v = sub.add_parser("verify", help="check file hashes, the fingerprint chain, the model, and re-derive ground truth")
    v.add_argument("path", metavar="PATH", help="suite folder or name")
    v.add_argument("--sample", type=int, default=None,
                   help="examples whose ground truth is re-derived (default: 3, or all of a smaller suite)")
    add_device_arg(v)
    add_format_arg(v)
    v.set_defaults(func=cmd_verify)
    i = sub.add_parser("info", help="counts per split and kind, targets, thresholds, fingerprints")
    i.add_argument("path", metavar="PATH", help="suite folder or name")
    add_format_arg(i)
    i.set_defaults(func=cmd_info)
    r = sub.add_parser("regenerate-test", help="replace the test split by a fresh one built with a new seed")
    r.add_argument("path", metavar="PATH", help="suite folder or name")
    r.add_argument("--seed", type=int, required=True, help="seed of the new test split (recorded in the manifest)")
    add_precision_arg(r, "of the screens (the test split's searches, its natural scan)")
    add_device_arg(r)
    r.set_defaults(func=cmd_regenerate)
    suite_show.register(sub)


def _workers(value: str) -> int:
    """The argparse type of ``--workers``: a whole number >= 1."""
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"--workers must be a whole number >= 1, got {value!r}")
    return n


def cmd_build(args: Any) -> int:
    from advdla.atomic import check_writable
    from advdla.attribution import check_context
    from advdla.models import load_model
    from advdla.suites import build_suite, check_destination, load_config
    from advdla.suites.workers import check_database_url

    if Path(args.config).is_dir():
        raise AdvdlaError(f"{args.config} is a folder: give a suite config file, e.g. suites/planted-erasure.yaml")
    cfg = load_config(args.config)
    out = Path(args.out) if args.out else Path(args.config).resolve().parent / cfg.name
    if not args.quiet_worker:  # a worker started by --workers may find the suite already saved by the others
        check_destination(out, force=args.force)
    # the suite is written next to its destination and renamed into place: that folder must be writable
    check_writable(out.parent, flag="--out" if args.out else "the suite's folder")
    local_db = args.db is None and args.workers > 1  # local workers without --db share a SQLite file beside --out
    db = f"sqlite:///{out.parent.resolve() / f'.{out.name}.workers.db'}" if local_db else args.db
    if db is not None:
        check_database_url(db)
    children = _start_workers(args, out, db) if args.workers > 1 else []
    try:
        with progress_bar(transient=True) as tick:
            bridge = load_model(cfg.model, device=args.device, progress=None if args.quiet_worker else tick)
        check_context(bridge, cfg.seq_len, f"{args.config}: seq_len {cfg.seq_len}")
        t0 = time.perf_counter()
        with progress_bar() as tick:
            path = build_suite(cfg, out, force=args.force, bridge=bridge, db=db, precision=args.precision,
                               progress=None if args.quiet_worker else tick)
    except BaseException:
        _stop_workers(children, failed=True)
        raise
    _stop_workers(children, failed=False)
    if local_db:
        for suffix in ("", "-wal", "-shm"):
            Path(db.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    if not args.quiet_worker:
        _done(f"built {path} in {time.perf_counter() - t0:.1f} s" + (f" by {args.workers} workers" if children else ""),
              path)
    return 0


def _start_workers(args: Any, out: Path, db: str) -> list[subprocess.Popen]:
    """``--workers N``: N - 1 more processes running this build on ``db`` (this one is the N-th), each with its
    share of the CPU threads. Each is reaped as soon as it ends, so a killed one's claims are taken over at once."""
    import torch

    threads = max(1, (os.cpu_count() or 1) // args.workers)
    torch.set_num_threads(threads)
    argv = [sys.executable, "-m", "advdla.cli", "suite", "build", args.config, "--out", str(out), "--db", db,
            "--device", args.device, "--precision", args.precision, "--quiet-worker"]
    argv += ["--force"] if args.force else []
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    children = [subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
                for _ in range(args.workers - 1)]
    for child in children:
        threading.Thread(target=child.wait, daemon=True).start()
    return children


def _stop_workers(children: list[subprocess.Popen], *, failed: bool) -> None:
    """Wait for the other workers (they finish once the suite is saved); stop them if this one failed."""
    for child in children:
        if failed:
            child.terminate()
        try:
            child.wait(timeout=None if not failed else 30)
        except subprocess.TimeoutExpired:
            child.kill()


def cmd_regenerate(args: Any) -> int:
    args.path = str(resolve_suite(args.path, flag="PATH"))
    from advdla.atomic import check_writable
    from advdla.models import load_model
    from advdla.suites import read_manifest, regenerate_test, verify_suite

    with fix_hint(_damaged(args.path)):
        manifest = read_manifest(Path(args.path))
    if args.seed in (manifest.get("test_seed"), manifest.get("seed")):
        raise AdvdlaError(f"seed {args.seed} already made this suite's current or original split: pass a new --seed")
    check_writable(Path(args.path).resolve().parent, flag="the folder of PATH")  # the new suite is renamed in there
    with progress_bar(transient=True) as tick:
        bridge = load_model(manifest["model"], device=args.device, progress=tick)
    with fix_hint(_damaged(args.path)):
        verify_suite(args.path, sample=0, bridge=bridge)  # a tampered suite is refused, not extended
    t0 = time.perf_counter()
    with progress_bar() as tick:
        path = regenerate_test(args.path, seed=args.seed, bridge=bridge, progress=tick, precision=args.precision)
    _done(f"regenerated the test split of {path} with seed {args.seed} in {time.perf_counter() - t0:.1f} s", path)
    return 0


def _done(message: str, path: Path) -> None:
    from advdla.suites import read_manifest

    m = read_manifest(path)
    print(f"{message}: {m['name']} v{m['version']}, fingerprint {m['fingerprint']}")


def _damaged(path: str) -> str:
    """What to do about a suite that fails a check (for a message that does not say)."""
    return (f"the suite at {path} is damaged or was edited: rebuild it (`advdla suite build CONFIG.yaml --force`) or "
            f"restore it")


def _n_examples(manifest: dict[str, Any]) -> int | None:
    """Examples in the suite by its manifest's split counts, or None when the manifest does not say."""
    try:
        return sum(int(n) for counts in manifest["splits"].values() for n in counts.values())
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def cmd_verify(args: Any) -> int:
    args.path = str(resolve_suite(args.path, flag="PATH"))
    from advdla.models import load_model
    from advdla.suites import read_manifest, verify_suite

    if args.sample is not None and args.sample < 0:
        raise AdvdlaError(f"--sample must be >= 0, got {args.sample}")
    with fix_hint(_damaged(args.path)):
        manifest = read_manifest(Path(args.path))
        n = _n_examples(manifest)
        if n is not None and args.sample is not None and args.sample > n:
            raise AdvdlaError(f"--sample {args.sample} is more than the suite's {n} examples: use at most {n}")
        sample = args.sample if args.sample is not None else min(3, 3 if n is None else n)
        bridge = load_model(str(manifest.get("model")), device=args.device) if args.device != "cpu" else None
        report = verify_suite(args.path, sample=sample, bridge=bridge)
    rows = [{"check": k, "result": ", ".join(v) if isinstance(v, list) else v} for k, v in report.items()]
    emit({"ok": True, **report}, args.format, tables=[(f"suite {args.path}: verified", rows)])
    return 0


def cmd_info(args: Any) -> int:
    args.path = str(resolve_suite(args.path, flag="PATH"))
    from advdla.suites import load_suite, suite_info

    with fix_hint(_damaged(args.path)):
        info = suite_info(load_suite(args.path))
    counts = [{"split": s, **c} for s, c in info["counts"].items()]
    about = [
        {"field": k, "value": info[k]}
        for k in ("name", "version", "model", "created", "seed", "test_seed", "fingerprint")
    ]
    about += [{"field": "targets", "value": ", ".join(info["targets"])}]
    about += [{"field": f"threshold {k}", "value": v} for k, v in info["thresholds"].items()]
    emit(
        info,
        args.format,
        tables=[
            (f"suite {info['name']} v{info['version']}", about),
            ("examples", counts),
            ("fingerprint chain", info["fingerprints"]),
        ],
    )
    return 0
