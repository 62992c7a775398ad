"""``capitals``: factual recall, "The capital of France is" -> " Paris".

Context: factual recall is the other task family circuit work measures (Meng et al. 2022's ROME, Geva et al. 2023):
the subject's tokens are enriched by early MLPs and an attention head at the last position reads the attribute out.
Capital cities are the simplest such facts that a 135M-parameter model knows.

Metric: answer = the country's capital; foil = another country's capital (" Berlin" for France), so the logit
difference says how much more the model names the right city than a capital it also knows.

Counterfactual: the same sentence about the foil's country ("The capital of Germany is"), which swaps which of the two
cities is right: a patch from it should move the logit difference from positive to negative. The two prompts have the
same token count where both country names are one token; :func:`advdla.tasks.tokenize.tokenize_task` drops the pairs
where they are not.
"""

from __future__ import annotations

import random

from advdla.tasks.base import TaskExample, register_task

__all__ = ["CAPITALS", "capital_example", "generate"]

# Countries whose name and capital are single words (most are single tokens in common BPE vocabularies)
CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo", "China": "Beijing",
    "Russia": "Moscow", "Canada": "Ottawa", "Egypt": "Cairo", "Greece": "Athens", "Poland": "Warsaw",
    "Sweden": "Stockholm", "Norway": "Oslo", "Portugal": "Lisbon", "Austria": "Vienna", "Ireland": "Dublin",
    "England": "London", "Australia": "Canberra", "Thailand": "Bangkok", "Finland": "Helsinki",
    "Denmark": "Copenhagen", "Hungary": "Budapest", "Belgium": "Brussels", "Peru": "Lima", "Kenya": "Nairobi",
    "Turkey": "Ankara", "Iran": "Tehran", "Cuba": "Havana", "Chile": "Santiago", "Iraq": "Baghdad",
    "Syria": "Damascus", "Lebanon": "Beirut", "Morocco": "Rabat", "Indonesia": "Jakarta", "Vietnam": "Hanoi",
}
FRAME = "The capital of {country} is"


def capital_example(country: str, other: str) -> TaskExample:
    """The example about ``country`` with ``other``'s capital as the foil and ``other`` as the counterfactual."""
    return TaskExample(prompt=FRAME.format(country=country), answer=f" {CAPITALS[country]}",
                       foil=f" {CAPITALS[other]}", counterfactual=FRAME.format(country=other))


@register_task("capitals", version="1", description="factual recall: a country's capital city",
               metric="answer: the country's capital; foil: another country's capital",
               counterfactual="the same sentence about the foil's country (the right city swaps)",
               source="factual recall, as in Meng et al. 2022 (ROME) and Geva et al. 2023")
def generate(n: int, *, seed: int = 0) -> list[TaskExample]:
    """``n`` (country, other country) pairs drawn with ``random.Random(seed)``; countries repeat when ``n`` exceeds
    their number."""
    rng = random.Random(seed)
    countries = list(CAPITALS)
    return [capital_example(*rng.sample(countries, 2)) for _ in range(n)]
