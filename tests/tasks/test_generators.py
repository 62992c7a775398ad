"""The task registry and its generators, text only (no tokenizer, no model): registered names, determinism per seed,
and that each counterfactual changes what its task says it changes and nothing else."""

from __future__ import annotations

import re

import pytest

from advdla.errors import AdvdlaError
from advdla.tasks import TASKS, TaskExample
from advdla.tasks.capitals import CAPITALS
from advdla.tasks.induction import REPEATED, SEQUENCE_LENGTH
from advdla.tasks.ioi import NAMES, ioi_prompt
from advdla.tasks.paper import PROMPTS

SEEDED = ["ioi", "greater-than", "capitals", "induction"]


def test_the_five_tasks_are_registered_with_their_metadata():
    assert set(TASKS.names()) == {"ioi", "greater-than", "capitals", "induction", "paper"}
    for spec in TASKS.values():
        assert spec.version and spec.description and spec.metric and spec.counterfactual and spec.source


def test_an_unknown_task_says_what_exists_and_the_nearest_name():
    with pytest.raises(AdvdlaError, match=r"unknown task 'iio'.*Did you mean 'ioi'"):
        TASKS.get("iio")


@pytest.mark.parametrize("name", SEEDED)
def test_a_seed_gives_the_same_examples_and_another_seed_others(name):
    spec = TASKS[name]
    first, again, other = spec.examples(30, seed=3), spec.examples(30, seed=3), spec.examples(30, seed=4)
    assert first == again
    assert first != other
    assert len(first) == 30 and all(isinstance(e, TaskExample) for e in first)


@pytest.mark.parametrize("name", [*SEEDED, "paper"])
def test_answer_and_foil_differ_and_n_must_be_positive(name):
    assert all(e.answer != e.foil for e in TASKS[name].examples(40, seed=0))
    with pytest.raises(AdvdlaError, match="at least 1"):
        TASKS[name].examples(0)


def test_ioi_the_wang_et_al_sentence_and_its_metric_tokens():
    assert ioi_prompt("Mary", "John") == "When Mary and John went to the store, John gave a drink to"
    for e in TASKS["ioi"].examples(50, seed=1):
        names = re.findall(r"\b(?:" + "|".join(NAMES) + r")\b", e.prompt)
        assert len(names) == 3 and names[2] == e.foil.strip() and e.answer.strip() in names[:2]
        assert names.count(e.foil.strip()) == 2 and names.count(e.answer.strip()) == 1


def test_ioi_counterfactual_is_abc_three_fresh_names_in_the_same_template():
    orders = set()
    for e in TASKS["ioi"].examples(50, seed=2):
        clean = re.findall(r"\b(?:" + "|".join(NAMES) + r")\b", e.prompt)
        abc = re.findall(r"\b(?:" + "|".join(NAMES) + r")\b", e.counterfactual)
        assert len(set(abc)) == 3 and not set(abc) & set(clean)
        skeleton = r"\b(?:" + "|".join(NAMES) + r")\b"
        assert re.sub(skeleton, "N", e.prompt) == re.sub(skeleton, "N", e.counterfactual)
        orders.add(clean[0] == e.answer.strip())
    assert orders == {True, False}  # both ABBA and BABA orders are drawn


def test_greater_than_answers_are_above_the_start_and_the_counterfactual_starts_at_01():
    for e in TASKS["greater-than"].examples(100, seed=0):
        frame = r"The \w+ lasted from the year (\d\d)(\d\d) to the year (\d\d)"
        century, yy, end = re.fullmatch(frame, e.prompt).groups()
        assert century == end and e.foil == yy and 2 <= int(yy) <= 98
        assert int(yy) < int(e.answer) <= 99 and len(e.answer) == 2
        assert e.counterfactual == e.prompt.replace(f"{century}{yy} to", f"{century}01 to")


def test_capitals_the_counterfactual_is_the_foils_country():
    by_capital = {f" {city}": country for country, city in CAPITALS.items()}
    for e in TASKS["capitals"].examples(60, seed=0):
        country = e.prompt.removeprefix("The capital of ").removesuffix(" is")
        assert e.answer == f" {CAPITALS[country]}"
        assert e.counterfactual == f"The capital of {by_capital[e.foil]} is" and by_capital[e.foil] != country


def test_induction_repeats_the_sequence_and_the_counterfactual_changes_one_word():
    for e in TASKS["induction"].examples(50, seed=0):
        words, cf = e.prompt.split(" ")[1:], e.counterfactual.split(" ")[1:]
        assert len(words) == len(cf) == SEQUENCE_LENGTH + REPEATED
        assert words[SEQUENCE_LENGTH:] == words[:REPEATED] and e.answer == f" {words[REPEATED]}"
        assert f" {e.foil.strip()}" == e.foil and e.foil.strip() in words[:SEQUENCE_LENGTH]
        changed = [i for i, (a, b) in enumerate(zip(words, cf, strict=True)) if a != b]
        assert changed == [REPEATED] and cf[REPEATED] not in words


def test_paper_holds_the_four_prompts_with_no_counterfactual():
    examples = TASKS["paper"].examples(10, seed=5)
    assert examples == list(PROMPTS) and len(examples) == 4
    assert examples[0].prompt == "It's in the cupboard, either on the top or on the"
    assert [(e.answer, e.foil) for e in examples] == [(" bottom", " top"), (" State", " University"),
                                                      (" __", " get"), (" Church", " church")]
    assert all(e.counterfactual is None for e in examples)
    assert TASKS["paper"].examples(2) == list(PROMPTS[:2])
