"""``run_pipeline``: every stage in order, each finished one recorded so that a re-run resumes after it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from advdla.atomic import write_json_atomic
from advdla.pipeline import stages
from advdla.pipeline.plan import RunPlan
from advdla.pipeline.resume import STAGES_FILE, check_out, finished_record, plan_key
from advdla.progress import Progress, silent

__all__ = ["run_pipeline"]


def run_pipeline(
    plan: RunPlan,
    *,
    report: stages.Report | None = None,
    on_stage: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> stages.RunOutputs:
    """Run every stage in order; in a folder holding an interrupted or finished run of the same plan, resume it.

    ``on_stage(name)`` is called as each starts, ``report(msg)`` for a status line inside it, ``progress`` for
    the long loops (search trials, ground truth, scoring). A stage recorded as finished in ``OUT/stages.json``
    is loaded from what it wrote instead of run again (the model is always loaded); an unfinished search resumes
    its study and an unfinished suite build its partial build, so an interrupted run loses little.
    """
    report, progress, on_stage = report or (lambda msg: None), progress or silent, on_stage or (lambda name: None)
    out = Path(plan.out)
    done = check_out(plan)  # fail before any work
    out.mkdir(parents=True, exist_ok=True)
    state = stages.RunState(out=out)
    write_json_atomic(out / "run.json", plan.to_dict())
    state.outputs.paths["plan"] = out / "run.json"
    steps = (
        ("model", lambda: stages.stage_model(plan, state, report)),
        ("analysis", lambda: stages.stage_analysis(plan, state, report)),
        ("search", lambda: stages.stage_search(plan, state, report, progress)),
        ("suite", lambda: stages.stage_suite(plan, state, report, progress)),
        ("scores", lambda: stages.stage_scores(plan, state, report, progress)),
        ("leaderboard", lambda: stages.stage_leaderboard(state)),
    )
    for name, run in steps:
        on_stage(name)
        t0 = time.perf_counter()
        resumed = name in done and name != "model"  # the model is always loaded
        if resumed:
            stages.load_stage(name, plan, state, done[name])
            state.outputs.resumed.append(name)
        else:
            run()
        state.outputs.seconds[name] = round(time.perf_counter() - t0, 1)
        if not resumed and name != "model":
            done[name] = finished_record(name, state)
            write_json_atomic(out / STAGES_FILE, {"plan": plan_key(plan), "done": done})
    return state.outputs
