"""``paper``: the seed paper's four adversarial prompts (Janiak, Rager, Dao, Lau, "An Adversarial Example for Direct
Logit Attribution: Memory Management in GELU-4L", arXiv 2310.07325).

Context: on these prompts GELU-4L's head L0H2 has a large DLA (0.55 to 0.95) while resample-ablating it hardly moves
the logit difference (-0.14 to 0.04): layer-2 heads erase most of what it writes. They are the examples this
benchmark generalises, so a method can be checked on them before any suite.

Metric: the paper's own, the clean run's top-1 minus top-2 token on GELU-4L, as the paper reports them (its
logit difference in brackets): " bottom" vs " top" (1.07), " State" vs " University" (1.89), " __" vs " get" (3.02),
" Church" vs " church" (0.94). The leading spaces are ours: the paper prints the tokens without them, and each
follows a word, where GPT-NeoX-style vocabularies put the space inside the next token. On another model these two
tokens are the paper's choice, not necessarily that model's top two.

What is not recoverable: the fourth prompt is printed in the paper (and in the project's REFERENCE.md) only as its
ending, "...Seventh-day Adventist"; its beginning is not given, so the prompt here is that ending alone, and its
logit difference will not match the paper's 0.94.

Counterfactual: none. The paper corrupted with unrelated text of the same token count, which is the corpus's to
supply (the suites' default corruption), so every example's ``counterfactual`` is None.

``n`` and ``seed``: the four prompts are fixed; ``generate(n)`` returns the first ``min(n, 4)`` in the paper's order
and the seed changes nothing.
"""

from __future__ import annotations

from advdla.tasks.base import TaskExample, register_task

__all__ = ["PROMPTS", "generate"]

PROMPTS = (
    TaskExample(prompt="It's in the cupboard, either on the top or on the", answer=" bottom", foil=" top"),
    TaskExample(prompt="I went to university at Michigan", answer=" State", foil=" University"),
    TaskExample(prompt="class MyClass:\n\tdef", answer=" __", foil=" get"),
    TaskExample(prompt="Seventh-day Adventist", answer=" Church", foil=" church"),  # the paper's beginning is elided
)


@register_task("paper", version="1", description="the seed paper's four adversarial prompts (for gelu-4l)",
               metric="the paper's top-1 vs top-2 tokens on GELU-4L (bottom/top, State/University, __/get, "
                      "Church/church)",
               counterfactual="none: the paper used unrelated text of the same length (the default corruption)",
               source="Janiak et al. 2023, arXiv 2310.07325")
def generate(n: int, *, seed: int = 0) -> list[TaskExample]:
    """The first ``min(n, 4)`` of the paper's prompts (``seed`` is accepted and ignored: they are fixed)."""
    del seed
    return list(PROMPTS[:n])
