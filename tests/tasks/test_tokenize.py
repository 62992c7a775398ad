"""``tokenize_task`` on a word-level toy tokenizer whose every split is known: the one-token check and its message,
BOS, drops by reason, equal-length groups, counterfactuals aligned with their prompts, and the metric."""

from __future__ import annotations

import re

import pytest
import torch
from beartype import beartype
from jaxtyping import jaxtyped

from advdla.errors import AdvdlaError
from advdla.tasks import TASKS, TaskExample, TaskSpec
from advdla.tasks.tokenize import (
    DROP_COUNTERFACTUAL,
    DROP_LENGTH,
    DROP_TOKEN,
    encode_prompt,
    logit_diff,
    single_token_id,
    tokenize_groups,
    tokenize_task,
)


class WordTokenizer:
    """Each word with its leading space is one token, except the words in ``split``, which are two (" Mary" ->
    " Ma", "ry"). Ids are assigned as pieces are first seen (BOS is 0)."""

    def __init__(self, split: tuple[str, ...] = ()) -> None:
        self.split, self.vocab = set(split), {"<bos>": 0}

    def _pieces(self, text: str) -> list[str]:
        out = []
        for word in re.findall(r" ?[^ ]+", text):
            out += [word[:3], word[3:]] if word.strip() in self.split else [word]
        return out

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        assert add_special_tokens is False, "tasks must not let the tokenizer add its own special tokens"
        return {"input_ids": [self.vocab.setdefault(p, len(self.vocab)) for p in self._pieces(text)]}

    def decode(self, ids: list[int]) -> str:
        inverse = {v: k for k, v in self.vocab.items()}
        return "".join(inverse[i] for i in ids)


def _spec(examples: list[TaskExample]) -> TaskSpec:
    return TaskSpec(name="toy", version="0", description="", generate=lambda n, seed=0: examples[:n], metric="",
                    counterfactual="", source="")


def test_a_string_that_is_not_one_token_stops_with_one_line_naming_its_pieces():
    tok = WordTokenizer(split=("Mary",))
    assert tok.decode([single_token_id(tok, " John")]) == " John"
    with pytest.raises(AdvdlaError) as err:
        single_token_id(tok, " Mary")
    assert "' Mary' is not one token" in str(err.value) and "[' Ma', 'ry']" in str(err.value)
    assert "\n" not in str(err.value)


def test_examples_with_a_multi_token_answer_or_foil_are_dropped_and_counted():
    tok = WordTokenizer(split=("Mary", "Kate"))
    batch = tokenize_task("ioi", tok, 200, seed=0)
    examples = TASKS["ioi"].examples(200, seed=0)
    split = {"Mary", "Kate"}
    bad = [bool({e.answer.strip(), e.foil.strip()} & split) for e in examples]
    cf_longer = [not b and bool(set(e.counterfactual.split()) & split) for e, b in zip(examples, bad, strict=True)]
    assert 0 < sum(bad) < 200 and 0 < sum(cf_longer) < 200
    assert batch.dropped == {DROP_TOKEN: sum(bad), DROP_COUNTERFACTUAL: sum(cf_longer)}
    assert batch.n_dropped == sum(bad) + sum(cf_longer) and len(batch) == 200 - batch.n_dropped
    assert all("Mary" not in (e.answer + e.foil) and "Kate" not in (e.answer + e.foil) for e in batch.examples)


def test_kept_answers_and_foils_are_the_ids_of_their_one_token():
    tok = WordTokenizer()
    batch = tokenize_task("ioi", tok, 30, seed=1)
    for ex, a, f in zip(batch.examples, batch.answer_ids.tolist(), batch.foil_ids.tolist(), strict=True):
        assert tok(ex.answer, add_special_tokens=False)["input_ids"] == [a]
        assert tok(ex.foil, add_special_tokens=False)["input_ids"] == [f]


@pytest.mark.parametrize("name", ["ioi", "capitals", "induction", "greater-than"])
def test_counterfactuals_have_the_prompts_token_count_position_by_position(name):
    tok = WordTokenizer()
    batch = tokenize_task(name, tok, 40, seed=0)
    assert batch.dropped == {} and batch.counterfactual_tokens is not None
    assert batch.counterfactual_tokens.shape == batch.tokens.shape
    rows = zip(batch.examples, batch.tokens.tolist(), batch.counterfactual_tokens.tolist(), strict=True)
    for ex, row, cf in rows:
        assert row == encode_prompt(tok, ex.prompt) and cf == encode_prompt(tok, ex.counterfactual)
        assert 0 < sum(a != b for a, b in zip(row, cf, strict=True)) <= 3  # a few slots change, the frame stays


def test_a_counterfactual_of_another_length_is_dropped():
    tok = WordTokenizer(split=("Germany",))
    examples = [TaskExample("The capital of France is", " Paris", " Berlin", "The capital of Germany is"),
                TaskExample("The capital of Italy is", " Rome", " Paris", "The capital of France is")]
    batch = tokenize_task(_spec(examples), tok, 2, seed=0)
    assert batch.dropped == {DROP_COUNTERFACTUAL: 1} and batch.examples == (examples[1],)


def test_prompts_of_several_lengths_are_grouped_and_the_largest_group_is_the_batch():
    tok = WordTokenizer()
    examples = [TaskExample("a b c", " x", " y"), TaskExample("a b", " x", " y"), TaskExample("d e f", " x", " y"),
                TaskExample("g h i", " x", " y"), TaskExample("j k", " x", " y")]
    groups = tokenize_groups(_spec(examples), tok, 5, seed=0)
    assert [len(g) for g in groups] == [3, 2] and [g.tokens.shape[1] for g in groups] == [3, 2]
    assert groups[0].dropped == {DROP_LENGTH: 2} and groups[1].dropped == {DROP_LENGTH: 3}
    assert tokenize_task(_spec(examples), tok, 5, seed=0).examples == groups[0].examples
    assert groups[0].counterfactual_tokens is None  # these examples have none (as the paper's)


def test_bos_is_position_zero_of_prompts_and_counterfactuals():
    batch = tokenize_task("ioi", WordTokenizer(), 5, seed=0, bos=0)
    assert batch.bos == 0 and (batch.tokens[:, 0] == 0).all() and (batch.counterfactual_tokens[:, 0] == 0).all()
    plain = tokenize_task("ioi", WordTokenizer(), 5, seed=0)
    assert batch.tokens.shape[1] == plain.tokens.shape[1] + 1 and not (plain.tokens == 0).any()


def test_when_nothing_survives_one_line_says_why():
    with pytest.raises(AdvdlaError, match=r"task greater-than: all 5 examples were dropped.*tokenizes as"):
        tokenize_task("greater-than", WordTokenizer(split=tuple(f"{i:02d}" for i in range(100))), 5, seed=0)


def test_the_metric_is_answer_minus_foil_at_the_last_position():
    batch = tokenize_task("ioi", WordTokenizer(), 4, seed=0)
    logits = torch.randn(len(batch), batch.tokens.shape[1], 200)
    ld = jaxtyped(typechecker=beartype)(logit_diff)(logits, batch)
    for i in range(len(batch)):
        expected = logits[i, -1, batch.answer_ids[i]] - logits[i, -1, batch.foil_ids[i]]
        assert ld[i].item() == pytest.approx(expected.item())
    assert batch.summary()["kept"] == 4 and batch.summary()["dropped"] == 0
