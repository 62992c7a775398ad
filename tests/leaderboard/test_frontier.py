"""The cost-accuracy frontier: the Pareto front (one pass equal to the double loop), the PNG, the terminal view."""

from __future__ import annotations

import math
import os
import random
import re
import stat

import pytest

from advdla.errors import AdvdlaError
from advdla.leaderboard.frontier import (
                                         Point,
                                         frontier_figure,
                                         frontier_lines,
                                         pareto_front,
                                         pareto_front_reference,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def board() -> list[Point]:
    """A planted board: ``slow-bad`` is dominated by ``ig`` (faster and better); ``exact-te`` reads the truth and
    is the best and slowest, yet never on the front; ``broken`` has no value."""
    return [
        Point("random", 0.001, 0.0, -0.05, 0.05),
        Point("dla", 0.01, 0.20, 0.10, 0.30),
        Point("atp", 0.05, 0.50, 0.40, 0.60),
        Point("ig", 2.0, 0.70, 0.60, 0.80),
        Point("slow-bad", 3.0, 0.40, 0.30, 0.50),
        Point("exact-te", 5.0, 1.0, role="reference"),
        Point("ceiling", 4.0, 0.90, 0.85, 0.95, role="ceiling"),
        Point("broken", 0.02, math.nan),
    ]


def random_points(rng: random.Random) -> list[Point]:
    """Small grids of seconds and values, so that equal times, equal values and exact duplicates are common."""
    n = rng.randint(0, 12)
    seconds = [rng.choice([0.1, 0.2, 0.5, 1.0, 2.0]) for _ in range(n)]
    values = [rng.choice([-0.2, 0.0, 0.3, 0.5, 0.8, math.nan]) for _ in range(n)]
    roles = [rng.choice(["method"] * 4 + ["reference", "ceiling"]) for _ in range(n)]
    return [Point(f"m{i}", s, v, role=r) for i, (s, v, r) in enumerate(zip(seconds, values, roles))]


# ------------------------------------------------------------------------------------------ the front


def test_pareto_front_equals_the_double_loop_on_random_points_with_ties():
    rng = random.Random(0)
    sets = [random_points(rng) for _ in range(500)]
    ties = sum(len({(p.seconds, p.value) for p in s}) < len(s) for s in sets)
    assert ties > 100, "the random sets must exercise ties"
    for points in sets:
        assert pareto_front(points) == pareto_front_reference(points), points


def test_the_planted_front():
    assert pareto_front(board()) == ["random", "dla", "atp", "ig"]


def test_a_faster_better_point_removes_a_dominated_one_and_exact_ties_both_stay():
    a, b = Point("fast-good", 1.0, 0.8), Point("slow-bad", 2.0, 0.5)
    assert pareto_front([b, a]) == ["fast-good"]
    assert pareto_front([Point("same-time-worse", 1.0, 0.5), a]) == ["fast-good"]
    assert pareto_front([Point("same-value-slower", 3.0, 0.8), a]) == ["fast-good"]
    assert pareto_front([Point("twin", 1.0, 0.8), a]) == ["fast-good", "twin"]


def test_references_ceilings_and_nan_never_stand_on_the_front_nor_push_methods_off():
    dla = Point("dla", 1.0, 0.2)
    assert pareto_front([dla, Point("exact-te", 0.5, 1.0, role="reference")]) == ["dla"]
    assert pareto_front([dla, Point("ceiling", 0.5, 1.0, role="ceiling")]) == ["dla"]
    assert pareto_front([dla, Point("nan", 0.5, math.nan), Point("no-time", math.nan, 0.9)]) == ["dla"]
    assert pareto_front([]) == []


def test_a_bad_role_or_name_is_one_clear_error():
    with pytest.raises(AdvdlaError, match="role 'oracle'.*use one of method, reference, ceiling"):
        Point("x", 1.0, 0.5, role="oracle")
    with pytest.raises(AdvdlaError, match="needs a method name"):
        Point("", 1.0, 0.5)


# ------------------------------------------------------------------------------------------ the figure


@pytest.fixture
def umask():
    """Set the umask for one test and restore it after."""
    before = os.umask(0o022)
    os.umask(before)
    yield os.umask
    os.umask(before)


def test_the_png_is_written_valid_and_the_same_bytes_for_the_same_input(tmp_path, umask):
    umask(0o022)
    title = "smollm2-135m-erasure v3, test split: seconds per example against importance MCC vs TE " * 2
    a = frontier_figure(board(), tmp_path / "a.png", title=title, ceiling=0.9)
    b = frontier_figure(board(), tmp_path / "sub" / "b.png", title=title, ceiling=0.9)
    assert a == tmp_path / "a.png" and b.exists()
    data = a.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR" and data[-8:-4] == b"IEND"
    assert data == b.read_bytes()
    assert b"Software" not in data and b"Matplotlib" not in data
    other = frontier_figure(board()[:3], tmp_path / "c.png", title=title)
    assert other.read_bytes() != data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "c.png", "sub"], "no temporary file is left"


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600), (0o002, 0o664)])
def test_the_png_mode_follows_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    path = frontier_figure(board(), tmp_path / "f.png", title="t")
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_replacing_a_figure_keeps_no_trace_of_the_old_one(tmp_path):
    path = tmp_path / "f.png"
    path.write_bytes(b"old")
    frontier_figure(board(), path, title="t")
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_no_points_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(AdvdlaError, match="no points"):
        frontier_figure([], tmp_path / "f.png", title="t")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ the terminal view


def test_the_lines_fit_in_80_columns_and_show_every_value_to_2_decimals():
    points = board() + [Point("a-method-with-a-name-much-longer-than-any-terminal-column-allows" * 2, 0.3, -0.123,
                              -0.25, 0.01)]
    lines = frontier_lines(points)
    assert len(lines) == len(points)
    assert all(len(line) <= 80 for line in lines), [len(line) for line in lines]
    for p in points:
        if math.isfinite(p.value):
            assert any(f" {p.value:.2f} " in line for line in lines), p
    assert any("…" in line and " -0.12 [-0.25, 0.01]" in line for line in lines)
    assert [line.split()[0] for line in lines][:3] == ["random", "dla", "broken"], "sorted by seconds"


def test_the_tags_mark_the_front_and_the_rows_that_read_the_truth():
    lines = {line.split()[0]: line for line in frontier_lines(board())}
    assert {name for name, line in lines.items() if line.endswith("*front*")} == {"random", "dla", "atp", "ig"}
    assert lines["exact-te"].endswith("(truth)") and lines["ceiling"].endswith("(ceiling)")
    assert "n/a" in lines["broken"]


def test_random_boards_at_any_width_never_exceed_it_nor_cut_a_number():
    rng = random.Random(1)
    number = re.compile(r"-?\d+(?:\.\d+)?(?:e[+-]\d+)?")
    for _ in range(200):
        width = rng.randint(50, 120)  # the numbers and tags need at most 49
        points = [Point("x" * rng.randint(1, 90), 10 ** rng.uniform(-5, 4), rng.uniform(-1, 1),
                        rng.uniform(-1.0, 0.0), rng.uniform(0.0, 1.0)) for _ in range(rng.randint(1, 6))]
        lines = frontier_lines(points, width=width)
        assert all(len(line) <= width for line in lines)
        for p, line in zip(sorted(points, key=lambda q: q.seconds), lines):
            assert number.findall(line)[1:] == [f"{p.value:.2f}", f"{p.lo:.2f}", f"{p.hi:.2f}"], line


def test_a_width_too_narrow_for_the_numbers_is_refused():
    with pytest.raises(AdvdlaError, match="width of 20 columns cannot hold"):
        frontier_lines(board(), width=20)
    assert frontier_lines([]) == []


def test_a_method_at_or_below_chance_is_never_on_the_front():
    """random is the fastest point, so without the chance floor it would always be on the front."""
    from advdla.leaderboard.frontier import Point, pareto_front, pareto_front_reference

    pts = [Point("random", 1e-4, -0.05), Point("lucky", 2e-4, 0.02, -0.1, 0.15), Point("dla", 1e-3, 0.6),
           Point("ig", 1.0, 0.9)]
    assert pareto_front(pts) == ["random", "lucky", "dla", "ig"]
    assert pareto_front(pts, above=0.0) == pareto_front_reference(pts, above=0.0) == ["dla", "ig"]
