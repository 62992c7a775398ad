"""``advdla tasks list | show`` through the CLI: formats, one-line errors with exit 2, and argument errors found
before torch is imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from advdla.cli import main
from advdla.tasks import TASKS


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_tasks_list_names_every_task(capsys):
    rc, out, _ = run(capsys, "tasks", "list", "--format", "json")
    assert rc == 0
    data = json.loads(out)
    assert [t["name"] for t in data["tasks"]] == ["capitals", "greater-than", "induction", "ioi", "paper"]
    assert "logit(answer) - logit(foil)" in data["metric"]
    rc, out, _ = run(capsys, "tasks", "list")
    assert rc == 0 and "greater-than" in out


def test_tasks_show_prints_the_seeded_examples(capsys):
    rc, out, _ = run(capsys, "tasks", "show", "ioi", "--n", "3", "--seed", "7", "--format", "json")
    assert rc == 0
    data = json.loads(out)
    assert data["examples"] == [e.to_dict() for e in TASKS["ioi"].examples(3, seed=7)]
    rc, out, _ = run(capsys, "tasks", "show", "paper")
    assert rc == 0 and "cupboard" in out and "MyClass:\\n\\tdef" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["tasks", "show", "iio"], "unknown task 'iio'"),
    (["tasks", "show", "ioi", "--n", "0"], "--n must be at least 1"),
])
def test_argument_errors_are_one_line_before_torch_is_imported(argv, message):
    code = ("import sys; from advdla.cli import main; rc = main(sys.argv[1:]); "
            "print('torch' in sys.modules, rc)")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "2"], done.stdout + done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_tasks_show_on_tiny_gemma3_says_why_nothing_survives(capsys):
    rc, _, err = run(capsys, "tasks", "show", "ioi", "--model", "tiny-gemma3")
    assert rc == 2 and "all 5 examples were dropped" in err and "is not one token" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_tasks_show_on_smollm2_gives_the_logit_differences(capsys):
    rc, out, _ = run(capsys, "tasks", "show", "capitals", "--n", "6", "--model", "smollm2-135m", "--format", "json")
    assert rc == 0
    data = json.loads(out)
    assert data["model"] == "smollm2-135m" and data["kept"] + data["dropped"] == 6
    assert len(data["examples"]) == data["kept"] and all("ld_counterfactual" in e for e in data["examples"])
    rc, out, _ = run(capsys, "tasks", "show", "paper", "--model", "smollm2-135m", "--format", "json")
    data = json.loads(out)  # three prompt lengths, each run as its own batch: all four kept
    assert rc == 0 and data["kept"] == 4 and data["dropped"] == 0 and data["lengths"] == "6, 7, 14"
