"""Speed benchmarks, each a ratio against a baseline measured in the same run (these machines are noisy).

Run: ``python -m pytest benchmarks -p no:randomly --benchmark-only`` (add ``ADVDLA_BENCH_MODEL=tiny-gpt2``
for a quick pass; ``ADVDLA_BENCH_DEVICE=cuda`` to run on a GPU; ``ADVDLA_BENCH_JSON=PATH`` also writes the times and
ratios as JSON, as ``benchmarks/device_check.sh`` does). Each benchmark group has a ``baseline`` and a ``fast``
member; at the end a table prints every ratio next to its goal. Correctness is asserted (fast == baseline
numbers); speed never is.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import pytest

MODEL = os.environ.get("ADVDLA_BENCH_MODEL", "smollm2-135m")
DEVICE = os.environ.get("ADVDLA_BENCH_DEVICE", "cpu")


@dataclass
class Ratio:
    group: str
    what: str
    value: float
    goal: str
    met: bool


RATIOS: list[Ratio] = []
TIMES: dict[tuple[str, str], float] = {}


@pytest.fixture(scope="session")
def bench_model():
    from advdla.models import load_model

    return load_model(MODEL, device=DEVICE)


def record_time(group: str, role: str, benchmark) -> float:
    """Store the best (minimum) time of a finished benchmark under (group, role) and return it."""
    seconds = float(benchmark.stats.stats.min)  # the least-disturbed round: the machine is shared
    TIMES[(group, role)] = seconds
    return seconds


def add_ratio(group: str, what: str, value: float, goal: str, met: bool) -> None:
    RATIOS.append(Ratio(group, what, value, goal, met))


def pytest_terminal_summary(terminalreporter):
    if os.environ.get("ADVDLA_BENCH_JSON"):
        import torch

        with open(os.environ["ADVDLA_BENCH_JSON"], "w", encoding="utf-8") as f:
            json.dump({"model": MODEL, "device": DEVICE, "threads": torch.get_num_threads(),
                       "times": {f"{g} | {r}": t for (g, r), t in TIMES.items()},
                       "ratios": [asdict(r) for r in RATIOS]}, f, indent=2)
    if not RATIOS:
        return
    tr = terminalreporter
    tr.section(f"advdla ratios (model: {MODEL})")
    tr.write_line(f"{'group':<22} {'ratio':<52} {'value':>9}  {'goal':<14} met")
    for r in RATIOS:
        tr.write_line(f"{r.group:<22} {r.what:<52} {r.value:>9.3g}  {r.goal:<14} {'yes' if r.met else 'NO'}")
