"""``advdla run [--model NAME] [--quick] [--out DIR]``: the main job, every stage once (see :mod:`advdla.pipeline`)."""

from __future__ import annotations

import time
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run", help="the main job: model, erasure analysis, search, suite, every method scored, leaderboard",
        description="Fetch the model if needed, run a quick erasure analysis, search for adversarial prompts on the "
                    "most overrated head, build a small suite with causal ground truth, score every built-in "
                    "attribution method on it and print the leaderboard. Ends with the paths of everything written.")
    p.add_argument("--model", default=None, help="registry name, HF hub name or local directory (default: smollm2-135m)")
    p.add_argument("--quick", action="store_true", help="smaller sizes everywhere (about half the time)")
    p.add_argument("--out", default="advdla-run", help="output folder (default: advdla-run)")
    p.add_argument("--seed", type=int, default=0, help="seed of every stage (default: 0)")
    p.add_argument("--methods", default="all", help="'all' built-in methods (default) or a comma-separated list, "
                   "plug-ins included")
    p.add_argument("--force", action="store_true", help="replace the suite a previous run left in --out")
    p.set_defaults(func=cmd_run)


def cmd_run(args: Any) -> int:
    from advdla.models import DEFAULT_MODEL
    from advdla.pipeline import STAGES, plan_run, run_pipeline
    from advdla.report import console, err_console

    import datasets

    datasets.disable_progress_bars()  # the suite's parquet writes would print their own bars between ours
    plan = plan_run(args.model or DEFAULT_MODEL, out=args.out, quick=args.quick, seed=args.seed, force=args.force,
                    methods=args.methods)
    err_console.print(f"[bold]advdla run[/] on {plan.model}{' (quick)' if args.quick else ''} -> {plan.out}")
    t0 = time.perf_counter()
    status = err_console.status("")
    stage_no = {name: i + 1 for i, name in enumerate(STAGES)}

    def on_stage(name: str) -> None:
        status.stop()
        err_console.rule(f"[{stage_no[name]}/{len(STAGES)}] {name}", align="left")
        status.update(f"{name}...")
        status.start()

    def report(msg: str) -> None:
        status.update(msg)

    try:
        outputs = run_pipeline(plan, report=report, on_stage=_pausing(on_stage, status))
    finally:
        status.stop()
    _print_leaderboard(outputs)
    _print_summary(outputs, time.perf_counter() - t0, console)
    return 0


def _pausing(on_stage: Any, status: Any) -> Any:
    """Stages with their own progress bars (search, suite, scores) run without the spinner: rich shows one live display."""
    def wrapped(name: str) -> None:
        on_stage(name)
        if name in ("search", "suite", "scores"):
            status.stop()

    return wrapped


def _print_leaderboard(outputs: Any) -> None:
    from advdla.commands.leaderboard import show

    show(outputs.paths["leaderboard"], suites_dir=outputs.paths["suite"].parent)


def _print_summary(outputs: Any, seconds: float, console: Any) -> None:
    from advdla.report import table

    notes = [{"stage": k, "seconds": v, "result": outputs.notes.get(k, "")} for k, v in outputs.seconds.items()]
    console.print(table(notes, title=f"advdla run: {seconds:.0f} s"))
    console.print("[bold]Wrote:[/]")
    for what, path in outputs.paths.items():
        console.print(f"  {what:<15} {path}")
