"""Progress without a terminal: plain log lines, throttled, one last line per run, a new run under an old name."""

from __future__ import annotations

from advdla.progress import Step
from advdla.report import progress_bar


def test_plain_lines_are_throttled_and_a_reused_task_name_logs_again(capsys, monkeypatch):
    clock = iter(float(t) for t in range(100))
    monkeypatch.setattr("advdla.report.time.monotonic", lambda: next(clock))
    with progress_bar(log_every=2.0) as tick:
        for run in ("dev", "test"):  # two searches reported under one task name, as a build does
            for i in range(1, 6):
                tick(Step("search", i, 5, run))
            tick(Step("search", 5, 5, run))  # a repeated final step prints nothing more
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" · ")[0] for line in lines] == ["search 3/5", "search 5/5", "search 3/5", "search 5/5"]
    assert lines[1].endswith("dev") and lines[3].endswith("test")


def test_a_resumed_run_rates_only_its_own_work(capsys, monkeypatch):
    """A run resumed at 52/80 (its first report) that then does 2 units every 10 s: 12/min, not 52 units' worth."""
    clock = iter(float(t) for t in range(0, 1000, 10))
    monkeypatch.setattr("advdla.report.time.monotonic", lambda: next(clock))
    with progress_bar(log_every=15.0) as tick:
        for done in range(52, 81, 2):
            tick(Step("ig", done, 80))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "ig 56/80 · 20 s · 12.0/min · ETA 120 s"
    assert lines[-1].startswith("ig 80/80 · 140 s · 12.0/min")
