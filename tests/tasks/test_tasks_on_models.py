"""Tasks on real tokenizers and models: tiny-gemma3 (a shipped random Gemma, BOS 256, byte-level tokenizer) gets
BOS at position 0; SmolLM2-135M (slow: fetched on first use) keeps what its tokenizer allows, does IOI and knows
that Paris is the capital of France."""

from __future__ import annotations

import pytest
import torch

from advdla.errors import AdvdlaError
from advdla.tasks import TASKS, TaskExample, TaskSpec
from advdla.tasks.capitals import CAPITALS, capital_example
from advdla.tasks.tokenize import DROP_TOKEN, logit_diff, token_pieces, tokenize_task


def _letters() -> TaskSpec:
    """One-byte answers, which a byte-level tokenizer keeps."""
    examples = [TaskExample("abc abc ab", "c", "a", "abd abd ab"), TaskExample("xyz xyz xy", "z", "x", "xyw xyw xy")]
    return TaskSpec(name="letters", version="0", description="", generate=lambda n, seed=0: examples[:n], metric="",
                    counterfactual="", source="")


def test_tiny_gemma3_gets_its_bos_first_in_prompts_and_counterfactuals(tiny_gemma):
    bos = tiny_gemma.advdla_card.bos
    assert bos == 256
    batch = tokenize_task(_letters(), tiny_gemma.tokenizer, 2, seed=0, bos=bos)
    assert batch.bos == 256 and batch.tokens[:, 0].tolist() == [256, 256]
    assert batch.counterfactual_tokens[:, 0].tolist() == [256, 256]
    assert (batch.tokens[:, 1:] != 256).all()  # only position 0 holds it
    assert batch.tokens.shape == (2, 1 + len("abc abc ab"))  # one byte per token after it
    with torch.no_grad():
        assert logit_diff(tiny_gemma(batch.tokens), batch).shape == (2,)


def test_tiny_gemma3_drops_every_ioi_example_and_says_how_a_name_tokenizes(tiny_gemma):
    with pytest.raises(AdvdlaError, match=r"task ioi: all 8 examples were dropped.*is not one token.*\[' ', '"):
        tokenize_task("ioi", tiny_gemma.tokenizer, 8, seed=0, bos=tiny_gemma.advdla_card.bos)


@pytest.fixture(scope="module")
def smollm2():
    from advdla.models import load_model

    return load_model("smollm2-135m")


@pytest.mark.slow
def test_smollm2_keeps_every_ioi_and_induction_example_and_no_greater_than_one(smollm2):
    tok = smollm2.tokenizer
    for name in ("ioi", "induction"):
        batch = tokenize_task(name, tok, 200, seed=0, bos=smollm2.advdla_card.bos)
        assert batch.n_dropped == 0 and len(batch) == 200
        assert batch.counterfactual_tokens.shape == batch.tokens.shape
    with pytest.raises(AdvdlaError, match=r"greater-than: all 50 examples were dropped.*\['\d', '\d'\]"):
        tokenize_task("greater-than", tok, 50, seed=0)  # SmolLM2 splits digits: "32" is two tokens


@pytest.mark.slow
def test_smollm2_drops_exactly_the_capitals_examples_whose_city_is_several_tokens(smollm2):
    tok = smollm2.tokenizer
    multi = {f" {c}" for c in CAPITALS.values() if len(token_pieces(tok, f" {c}")) > 1}
    assert " Paris" not in multi and 0 < len(multi) < len(CAPITALS) // 2
    examples = TASKS["capitals"].examples(200, seed=0)
    batch = tokenize_task("capitals", tok, 200, seed=0)
    assert batch.dropped == {DROP_TOKEN: sum(e.answer in multi or e.foil in multi for e in examples)}


@pytest.mark.slow
def test_smollm2_prefers_the_indirect_object_on_most_ioi_prompts(smollm2):
    batch = tokenize_task("ioi", smollm2.tokenizer, 100, seed=0)
    with torch.no_grad():
        ld = logit_diff(smollm2(batch.tokens), batch)
        abc = logit_diff(smollm2(batch.counterfactual_tokens), batch)
    share = (ld > 0).float().mean().item()
    print(f"IOI on smollm2-135m: answer preferred on {share:.0%}, mean LD {ld.mean():.2f}, "
          f"ABC mean LD {abc.mean():.2f}")
    assert share >= 0.8
    assert abc.mean() < ld.mean() - 2  # the ABC names remove most of the IO-vs-S signal


@pytest.mark.slow
def test_smollm2_knows_paris_is_the_capital_of_france_and_the_counterfactual_flips_it(smollm2):
    others = ["Germany", "Italy", "Spain", "England", "Russia"]
    spec = TaskSpec(name="france", version="0", description="", metric="", counterfactual="", source="",
                    generate=lambda n, seed=0: [capital_example("France", o) for o in others][:n])
    batch = tokenize_task(spec, smollm2.tokenizer, len(others), seed=0)
    assert len(batch) == len(others) and {e.answer for e in batch.examples} == {" Paris"}
    with torch.no_grad():
        ld = logit_diff(smollm2(batch.tokens), batch)
        swapped = logit_diff(smollm2(batch.counterfactual_tokens), batch)
    assert (ld > 0).all(), ld
    assert (swapped < 0).all(), swapped  # about Germany, " Berlin" beats " Paris"
