"""``greater-than``: "The war lasted from the year 1732 to the year 17" (Hanna et al. 2023, "How does GPT-2 compute
greater-than?", arXiv 2305.00586).

Context: GPT-2 small puts its probability on end years above the start year (33..99 after "1732 to the year 17"),
computed by a small circuit of attention heads and late MLPs. Hanna et al. measure it as the probability mass on the
years above the start year minus the mass on the years at or below it.

Metric (the logit-difference interface every task shares): answer = one year above the start year's two digits,
drawn uniformly from (YY, 99] with the example's seed; foil = the start year's own two digits (the most likely wrong
continuation: repeating the start). So ``logit(answer) - logit(foil)`` is one pair out of Hanna et al.'s probability
difference, not the whole mass; a caller that wants the mass sums the softmax over the years above YY.

Counterfactual: the "01" start year of Hanna et al. ("from the year 1701 to the year 17"): the same sentence, with a
start year below every possible answer, so the greater-than signal says nothing about YY.

Tokenisers: the task assumes GPT-2-style tokenisation, where "1732" is " 17" + "32" and "32" is one token. A
tokenizer that splits digits one by one (SmolLM2, Gemma, Llama) makes "32" two tokens, so
:func:`advdla.tasks.tokenize.tokenize_task` drops every example there and says so.
"""

from __future__ import annotations

import random

from advdla.tasks.base import TaskExample, register_task

__all__ = ["NOUNS", "generate"]

# Hanna et al.'s nouns (a subset), each an event that lasts
NOUNS = ("war", "expedition", "reign", "dynasty", "famine", "occupation", "pilgrimage", "siege", "voyage", "rebellion",
         "empire", "drought", "conflict", "crusade", "migration", "plague")
CENTURIES = tuple(range(11, 18))  # 1100s..1700s, as in the paper
FRAME = "The {noun} lasted from the year {century}{yy:02d} to the year {century}"


def _example(rng: random.Random) -> TaskExample:
    noun, century, yy = rng.choice(NOUNS), rng.choice(CENTURIES), rng.randint(2, 98)  # 00, 01, 99 are excluded
    above = rng.randint(yy + 1, 99)
    return TaskExample(prompt=FRAME.format(noun=noun, century=century, yy=yy), answer=f"{above:02d}",
                       foil=f"{yy:02d}", counterfactual=FRAME.format(noun=noun, century=century, yy=1))


@register_task("greater-than", version="1", description="year comparison: the end year is above the start year",
               metric="answer: a year above the start year's two digits; foil: the start year's two digits",
               counterfactual="the '01' start year (from the year 1701 to the year 17)",
               source="Hanna et al. 2023, arXiv 2305.00586")
def generate(n: int, *, seed: int = 0) -> list[TaskExample]:
    """``n`` greater-than examples drawn with ``random.Random(seed)``."""
    rng = random.Random(seed)
    return [_example(rng) for _ in range(n)]
