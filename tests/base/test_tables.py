"""Tables that fit: :func:`advdla.report.table` never cuts a cell (no '…', every word of every shown cell printed
whole), keeps each line within the terminal, drops columns only from the right and says which; ``--columns`` and
``--format csv`` give exactly what was asked."""

from __future__ import annotations

import csv
import io
import random

import pytest
from rich.console import Console

from advdla import report
from advdla.errors import AdvdlaError


def _render(rows, width, **kw):
    out = io.StringIO()
    t = report.table(rows, title="a title long enough to wrap at eighty columns, which it must do cleanly", width=width,
                     **kw)
    Console(file=out, width=max(width, report.table_width(t)), color_system=None).print(t)
    return t, out.getvalue()


def _random_rows(rng, n_cols):
    cols = [rng.choice(["spearman", "fooled", "kendall", "topk_recall", "sign_agreement", "x"]) + str(i)
            for i in range(n_cols)]
    cell = lambda: f"{rng.uniform(-1, 1):.2f} [{rng.uniform(-1, 0):.2f},{rng.uniform(0, 1):.2f}]"  # noqa: E731
    return [{c: (cell() if j else f"method-{rng.randint(0, 10**rng.randint(1, 6))}") for j, c in enumerate(cols)}
            for _ in range(rng.randint(1, 6))]


@pytest.fixture(autouse=True)
def _default_layout():
    report.set_layout()
    yield
    report.set_layout()


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("seed", range(20))
def test_random_tables_fit_and_cut_nothing(width, seed):
    rows = _random_rows(random.Random(seed), random.Random(seed).randint(1, 14))
    t, text = _render(rows, width)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    shown = [c.header.plain for c in t.columns]
    assert shown == list(rows[0])[:len(shown)]  # dropped from the right only
    printed_words = set(text.replace("│", " ").replace("┃", " ").split())
    for r in rows:
        for c in shown:
            assert set(r[c].split()) <= printed_words, (c, r[c])
    hidden = list(rows[0])[len(shown):]
    if hidden:
        assert all(h in " ".join(text.split()) for h in hidden)  # the caption names every column left out


def test_two_columns_stay_and_long_words_continue_on_the_next_line():
    fp = "9d84e1a01233eeef31a172ec2ba05790a4c9384780d1a283061776a4c06cc1b1"
    rows = [{"field": "weights_fingerprint", "value": fp}, {"field": "name", "value": "planted-erasure"}]
    _, text = _render(rows, 80)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    cells = [line.split("│")[2].strip() for line in text.splitlines() if line.count("│") == 3]
    assert fp in "".join(cells)  # folded across lines, every digit printed in order


def test_wide_shows_every_column_and_columns_chooses():
    rows = _random_rows(random.Random(3), 12)
    report.set_layout(wide=True)
    t, _ = _render(rows, 80)
    assert [c.header.plain for c in t.columns] == list(rows[0])
    chosen = list(rows[0])[5:7]
    report.set_layout(columns=",".join(reversed(chosen)))
    t, _ = _render(rows, 80)
    assert [c.header.plain for c in t.columns] == list(reversed(chosen))


def test_columns_that_name_nothing_are_refused_with_a_suggestion():
    report.set_layout(columns="spearmn")
    with pytest.raises(AdvdlaError, match="Did you mean 'spearman'"):
        report.check_columns([("t", [{"method": "dla", "spearman": "0.3"}])])
    with pytest.raises(AdvdlaError, match="empty"):
        report.set_layout(columns=",")


def test_csv_holds_every_row_and_the_chosen_columns():
    rows = [{"method": "dla", "spearman": "0.31 [0.25,0.37]", "n": 12}, {"method": "atp", "spearman": "0.89", "n": 3}]
    back = list(csv.DictReader(io.StringIO(report.to_csv([("t", rows)]))))
    assert back == [{k: str(v) for k, v in r.items()} for r in rows]
    report.set_layout(columns="n,method")
    assert report.to_csv([("t", rows)]).splitlines()[0] == "n,method"
