"""The README's quickstart, run as written on the planted model, and what the README says it prints.

The commands are read from the README (the fenced block after the ``quickstart`` marker), so the test breaks when
the README's commands stop working; each runs as its own ``advdla`` process, in an empty folder."""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def readme_block(marker: str) -> str:
    """The fenced block that follows the HTML comment holding ``marker`` in the README."""
    text = (ROOT / "README.md").read_text()
    found = re.search(rf"<!-- {re.escape(marker)}[^>]*-->\s*```\w*\n(.*?)```", text, re.S)
    assert found, f"no block after a <!-- {marker} --> marker in README.md"
    return found.group(1)


def quickstart_commands() -> list[list[str]]:
    lines = [line.strip() for line in readme_block("quickstart").splitlines() if line.strip()]
    assert all(line.startswith("advdla ") for line in lines)
    return [shlex.split(line)[1:] for line in lines]


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """Every quickstart command's (argv, exit status, stdout, stderr), run in order in one empty folder."""
    cwd = tmp_path_factory.mktemp("quickstart")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "100"}
    env.pop("ADVDLA_LEADERBOARD", None)
    out = []
    for argv in quickstart_commands():
        done = subprocess.run([sys.executable, "-m", "advdla.cli", *argv], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=600)
        out.append((argv, done.returncode, done.stdout, done.stderr))
    return cwd, out


def test_every_quickstart_command_succeeds(quickstart):
    _, runs = quickstart
    assert len(runs) >= 6
    for argv, rc, _, err in runs:
        assert rc == 0, f"advdla {' '.join(argv)}: {err}"


def _run(quickstart, command):
    return next(r for r in quickstart[1] if r[0][0] == command)


def test_what_the_readme_says_they_print(quickstart):
    cwd, _ = quickstart
    _, _, out, _ = _run(quickstart, "predict")
    tokens = re.findall(r"│\s+\d+\s+│\s+'(.)'", out)
    assert tokens[:2] == ["-", "+"]
    _, _, out, err = _run(quickstart, "analyze")
    assert "erasers L1H2" in out and "-0.998" in out
    figures = sorted(p.name for p in (cwd / "figures").glob("*.png"))
    assert len(figures) == 4 and all(name in err for name in figures)
    assert all(stat.S_IMODE((cwd / "figures" / f).stat().st_mode) & 0o044 for f in figures)  # the umask's mode
    _, _, out, _ = _run(quickstart, "suite")
    assert "24 examples" in " ".join(out.split()) and out.count("compensation") == 12
    assert "wrote 2 result records to scores.json" in _run(quickstart, "score")[3]
    records = {r["method"]["name"]: r for r in json.loads((cwd / "scores.json").read_text())}
    adv = {(n, m["metric"], m["against"]): m for n, r in records.items() for m in r["metrics"]
           if m["kind"] == "adversarial"}
    assert f"{adv['dla', 'mcc', 'de']['value']:.2f}" == "1.00" and f"{adv['dla', 'mcc', 'te']['value']:.2f}" == "0.78"
    assert adv["dla", "false_alarm", "te"]["value"] == 1.0 and adv["atp", "false_alarm", "te"]["value"] == 0.0
    assert f"{adv['atp', 'mcc', 'te']['value']:.2f}" == "1.00"
    board = quickstart[1][-1][2]
    said = " ".join(board.split())
    assert "+0.22*" in board and "atp" in board and "chance" in board and "Pre-registered hypotheses" in said
    assert "no test: not scored on test" in said
