"""Resuming a run: what must match for a folder's run to be continued, and which of its stages finished.

Context: ``advdla run`` writes ``OUT/run.json`` (the plan) first and ``OUT/stages.json`` (each finished stage, with
its time and note) after every stage. A re-run of the same plan into the same folder reads the finished stages back
instead of running them again; a folder holding a run of another plan is refused unless ``--force``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from advdla.errors import AdvdlaError
from advdla.pipeline.plan import STAGES, RunPlan, suite_name
from advdla.suites import check_destination

__all__ = ["STAGES_FILE", "plan_key", "check_out", "finished_stages", "finished_record"]

STAGES_FILE = "stages.json"  # the finished stages of the run in OUT, for a re-run to resume
NOT_KEYED = ("out", "force", "notes")  # plan fields a resumed run may change


def plan_key(plan: RunPlan) -> dict[str, Any]:
    """What must match for a folder's run to be resumed: every size, not where it lives, --force or the notes."""
    return json.loads(json.dumps(_keyed(plan.to_dict())))


def _keyed(saved: dict[str, Any]) -> dict[str, Any]:
    """A plan's fields that key its folder; a run without --limit keys as runs did before the option existed, so
    their folders still resume; so does an fp32 run (every run was fp32 before --precision)."""
    return {k: v for k, v in saved.items() if k not in NOT_KEYED and not (k == "limit" and v is None)
            and not (k == "precision" and v == "fp32")}


def finished_stages(out: str | Path) -> list[str]:
    """The stages a run into ``out`` has finished and recorded (what a re-run of the same plan resumes from)."""
    record = _read_json(Path(out) / STAGES_FILE) or {}
    return [name for name in STAGES if name in record.get("done", {})]


def check_out(plan: RunPlan) -> dict[str, dict[str, Any]]:
    """The finished stages of a run of the same plan in ``plan.out`` (empty for a fresh folder or with --force).

    Refuses a folder holding a run of another plan, or a suite without a run record, unless ``plan.force``.
    """
    out = Path(plan.out)
    if plan.force:
        return {}
    saved = _read_json(out / "run.json")
    if saved is None:
        check_destination(out / "suites" / suite_name(plan.model), force=False)
        return {}
    before = _keyed(saved)
    if before != plan_key(plan):
        now = plan_key(plan)
        diff = ", ".join(f"{k} {before.get(k)!r} (now {now.get(k)!r})" for k in now if before.get(k) != now[k])
        raise AdvdlaError(f"{out} holds a run with other settings ({diff}): pass --force to replace it, or choose "
                          f"another --out")
    record = _read_json(out / STAGES_FILE) or {}
    return dict(record.get("done", {})) if record.get("plan") == plan_key(plan) else {}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def finished_record(name: str, state: Any) -> dict[str, Any]:
    """What ``OUT/stages.json`` keeps of a finished stage: its time and note, and the analysis's target."""
    rec = {"seconds": state.outputs.seconds.get(name), "note": state.outputs.notes.get(name, "")}
    if name == "analysis":
        rec["target"] = state.target.name
    return rec

