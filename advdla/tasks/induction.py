"""``induction``: a random sequence repeated, "[A][B]...[A]" -> "[B]" (Olsson et al. 2022, "In-context Learning and
Induction Heads", arXiv 2209.11895).

Context: an induction head attends from the current token to the token after its previous occurrence and copies it;
with a previous-token head before it, it is the two-layer circuit behind in-context copying. A sequence of random
tokens, shown once and then repeated, is predictable only through that circuit.

The sequence: :data:`SEQUENCE_LENGTH` words drawn without replacement from :data:`WORDS` (common English words with a
leading space, one token in most BPE vocabularies; text rather than token ids, so every task's prompt is text), then
its first :data:`REPEATED` words again. The prompt ends in the middle of the repeat.

Metric: answer = the word that followed the last prompt word in the first occurrence; foil = another word of the
sequence (also in the context, so the logit difference measures copying the right one, not copying in general).

Counterfactual: the first occurrence's continuation changed: the answer's place in the first occurrence holds a
fresh word that is not in the sequence, so an induction head now points at that word, not at the answer. The
prompt's token count is unchanged where the fresh word is one token like the one it replaces.
"""

from __future__ import annotations

import random

from advdla.tasks.base import TaskExample, register_task

__all__ = ["WORDS", "SEQUENCE_LENGTH", "REPEATED", "generate"]

WORDS = ("apple", "river", "chair", "window", "garden", "yellow", "music", "doctor", "silver", "forest", "market",
         "engine", "pencil", "winter", "castle", "planet", "rabbit", "bridge", "butter", "candle", "dragon", "island",
         "jacket", "ladder", "mirror", "orange", "pepper", "rocket", "saddle", "tunnel", "velvet", "wallet", "anchor",
         "basket", "cotton", "desert", "finger", "hammer", "kitten", "lemon", "monkey", "needle", "onion", "pocket",
         "puzzle", "shadow", "tomato", "valley", "whale", "zebra")
SEQUENCE_LENGTH, REPEATED = 10, 6  # the answer is the sequence's 7th word


def _example(rng: random.Random) -> TaskExample:
    drawn = rng.sample(WORDS, SEQUENCE_LENGTH + 1)
    sequence, fresh = drawn[:SEQUENCE_LENGTH], drawn[SEQUENCE_LENGTH]
    answer = sequence[REPEATED]
    foil = rng.choice([w for w in sequence if w != answer and w != sequence[REPEATED - 1]])
    changed = sequence[:REPEATED] + [fresh] + sequence[REPEATED + 1:]

    def text(first: list[str]) -> str:
        return "".join(f" {w}" for w in first + sequence[:REPEATED])

    return TaskExample(prompt=text(sequence), answer=f" {answer}", foil=f" {foil}", counterfactual=text(changed))


@register_task("induction", version="1", description="in-context copying: a random word sequence, repeated",
               metric="answer: the word that followed in the first occurrence; foil: another word of the sequence",
               counterfactual="the first occurrence's continuation replaced by a fresh word",
               source="Olsson et al. 2022, arXiv 2209.11895")
def generate(n: int, *, seed: int = 0) -> list[TaskExample]:
    """``n`` induction examples drawn with ``random.Random(seed)``."""
    rng = random.Random(seed)
    return [_example(rng) for _ in range(n)]
