"""``advdla run [--model NAME] [--quick] [--out DIR]``: the main job, every stage once (see :mod:`advdla.pipeline`)."""

from __future__ import annotations

import time
from typing import Any

from advdla.atomic import check_writable, removed_on_failure
from advdla.commands.leaderboard import show
from advdla.commands.methods import add_plugin_arg, load_all_plugins
from advdla.commands.names import resolve_suite
from advdla.errors import AdvdlaError
from advdla.progress import Step
from advdla.report import add_device_arg, add_precision_arg, console, err_console, print_table, progress_bar, table


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="the main job: model, erasure analysis, search, suite, every method scored, leaderboard",
        description="Fetch the model if needed, run a quick erasure analysis, search for adversarial prompts on its "
        "auto target (the head or MLP whose direct effect later components undo most), build a small suite with "
        "causal ground truth, score every built-in attribution method on it and print the leaderboard. Ends with "
        "the paths of everything written.",
    )
    p.add_argument(
        "--model", default=None, help="registry name, HF hub name or local directory (default: smollm2-135m)"
    )
    p.add_argument("--quick", action="store_true", help="smaller sizes everywhere (about half the time)")
    p.add_argument("--out", default="advdla-run", help="output folder (default: advdla-run)")
    p.add_argument("--seed", type=int, default=0, help="seed of every stage (default: 0)")
    p.add_argument(
        "--methods", default="all", help="'all' built-in methods (default) or a comma-separated list, plug-ins included"
    )
    p.add_argument(
        "--shipped", default="auto", help="a built suite of the model whose dev examples join the run's own; "
        "'auto' (default): the project's suites/ folder's suite of the model, if it ships one; 'none': the run's "
        "own examples only"
    )
    p.add_argument("--force", action="store_true", help="replace the suite a previous run left in --out")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="score only N dev examples, adversarial and natural alternately: a smoke run of every stage")
    add_precision_arg(p, "of the screens (search loop, natural scan)")
    add_plugin_arg(p)
    add_device_arg(p)
    p.set_defaults(func=cmd_run)


def cmd_run(args: Any) -> int:
    if args.limit is not None and args.limit < 1:  # before the heavy imports: a typo costs no start-up time
        raise AdvdlaError(f"--limit must be at least 1, got {args.limit}")
    shipped = args.shipped if args.shipped in ("auto", "none") else str(resolve_suite(args.shipped, flag="--shipped"))
    # Lazy: the pipeline imports torch and transformer_lens (about 4 s), which `advdla --help` must not pay.
    import datasets

    from advdla.models import DEFAULT_MODEL
    from advdla.pipeline import STAGES, fitting_seq_len, plan_run, run_pipeline

    datasets.disable_progress_bars()  # the suite's parquet writes would print their own bars between ours
    model = args.model or DEFAULT_MODEL
    check_writable(args.out, flag="--out")
    load_all_plugins(args, "run")
    bridge = _load_unregistered(model)
    plan = plan_run(model, out=args.out, quick=args.quick, seed=args.seed, force=args.force, methods=args.methods,
                    device=args.device, shipped=shipped, seq_len=fitting_seq_len(bridge) if bridge else None,
                    limit=args.limit, precision=args.precision)
    _check_before_writing(plan, bridge)
    for line in plan.notes:
        err_console.print(f"advdla run: note: {line}", highlight=False, markup=False, soft_wrap=True)
    err_console.print(f"[bold]advdla run[/] on {plan.model}{' (quick)' if args.quick else ''} -> {plan.out}")
    t0 = time.perf_counter()
    display = _StageDisplay(STAGES)
    try:
        outputs = _run_keeping_finished_stages(plan, display, run_pipeline)
    finally:
        display.close()
    _print_leaderboard(outputs)
    _print_summary(outputs, time.perf_counter() - t0)
    return 0


def _run_keeping_finished_stages(plan: Any, display: _StageDisplay, run_pipeline: Any) -> Any:
    """Run the pipeline; if it fails before any stage finished, leave no half-written --out behind; after one
    finished, keep what the finished stages wrote (as Ctrl-C does) and say how to resume."""
    from advdla.pipeline import finished_stages

    try:
        with removed_on_failure(plan.out, keep=lambda: bool(finished_stages(plan.out))):
            return run_pipeline(plan, report=display.report, on_stage=display.stage, progress=display.progress)
    except AdvdlaError as exc:
        done = finished_stages(plan.out)
        if not done:
            raise
        raise AdvdlaError(f"{exc} (kept in {plan.out}: the finished stages {', '.join(done)}; once that is fixed, "
                          f"the same command resumes after them)") from None


def _load_unregistered(model: str) -> Any:
    """A local or hub model, loaded once here so that a model that does not load, or whose context is too short,
    stops the run before anything is written (None for the registry's models: they load in the model stage)."""
    from advdla.models import MODELS, load_model

    if model in MODELS:
        return None
    with progress_bar(transient=True) as tick:
        return load_model(model, progress=tick)


def _check_before_writing(plan: Any, bridge: Any) -> None:
    """Refuse, before anything is printed or written, a --out that already holds a run of other settings (without
    --force; a run of the same settings is resumed), and a loaded model whose vocabulary is smaller than the search's
    pool of candidate tokens."""
    from advdla.pipeline import check_out

    check_out(plan)  # a run of another plan, or a suite with no run record, in --out: refused without --force
    if bridge is not None and bridge.cfg.d_vocab < plan.pool_size:
        raise AdvdlaError(f"the model's vocabulary of {bridge.cfg.d_vocab} tokens is smaller than the run's search "
                          f"pool of {plan.pool_size} candidate tokens per slot: use a model with a larger vocabulary")


class _StageDisplay:
    """A rule per stage, then a spinner with the stage's status line, or progress bars for the long stages.

    rich shows one live display at a time, so a stage's bars replace the spinner until the next stage starts.
    """

    BARS = ("search", "suite", "scores")

    def __init__(self, stages: tuple[str, ...]) -> None:
        self.numbers = {name: i + 1 for i, name in enumerate(stages)}
        self.status = err_console.status("")
        self.bars: progress_bar | None = None
        self.current = ""

    def stage(self, name: str) -> None:
        self.close()
        self.current = name
        err_console.rule(f"[{self.numbers[name]}/{len(self.numbers)}] {name}", align="left")
        if name in self.BARS:
            self.bars = progress_bar().__enter__()
        else:
            self.status.update(f"{name}...")
            self.status.start()

    def report(self, msg: str) -> None:
        if self.bars is None:
            self.status.update(msg)
        else:
            err_console.print(f"  {msg}", highlight=False, markup=False)

    def progress(self, step: Step) -> None:
        if self.bars is not None:
            self.bars(step)

    def close(self) -> None:
        self.status.stop()
        if self.bars is not None:
            self.bars.__exit__(None, None, None)
            self.bars = None


def _print_leaderboard(outputs: Any) -> None:
    from advdla.leaderboard import load_board, run_verdict, suite_versions

    suites = outputs.paths["suite"].parent
    show(outputs.paths["leaderboard"], suites_dir=suites)
    console.print(f"[bold]Rows:[/] {outputs.notes.get('rows', '')}", highlight=False)
    board = load_board(outputs.paths["leaderboard"], suites_dir=suites)
    for entries in suite_versions(board.current).values():
        for line in run_verdict(entries, suites_dir=suites):
            console.print(line, highlight=False, markup=False)


def _print_summary(outputs: Any, seconds: float) -> None:
    notes = [{"stage": k, "seconds": v, "result": outputs.notes.get(k, "")} for k, v in outputs.seconds.items()]
    resumed = f" (resumed: {', '.join(outputs.resumed)} finished before)" if outputs.resumed else ""
    print_table(table(notes, title=f"advdla run: {seconds:.0f} s{resumed}"))
    console.print("[bold]Wrote:[/]")
    for what, path in outputs.paths.items():
        console.print(f"  {what:<15} {path}")
