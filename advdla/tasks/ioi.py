"""``ioi``: indirect object identification (Wang et al. 2022, "Interpretability in the Wild", arXiv 2211.00593).

Context: in "When Mary and John went to the store, John gave a drink to", the model should name the indirect object
(" Mary"), not the subject who is repeated (" John"). GPT-2 small does it with a circuit of duplicate-token,
S-inhibition and name-mover heads, with backup name movers that take over when the name movers are ablated: the
self-repair this benchmark's DLA-vs-patching question is about.

Metric: answer = the indirect object (IO), foil = the subject (S); ``logit(IO) - logit(S)`` at the last position.

Counterfactual: the ABC distribution of Wang et al.: the same template (same connective, place, verb and object)
with three fresh names, all different from each other and from the clean prompt's two ("When Anna and Paul went to
the store, Kate gave a drink to"). It keeps the sentence's structure but removes the information of which name is
repeated, so the circuit's IO-vs-S signal is gone.

Intuition for the template: every slot is one common English word, and each template is the same sentence frame with
a different connective or verb ("{CONN} {A} and {B} went to the {PLACE}, {B} {VERB} a {OBJECT} to"), so on a BPE
tokenizer whose names and words are single tokens every prompt has the same token count and the ABC prompt matches it
position by position. Both name orders are drawn: ABBA (the IO first) and BABA (the subject first).
"""

from __future__ import annotations

import random

from advdla.tasks.base import TaskExample, register_task

__all__ = ["NAMES", "generate", "ioi_prompt"]

NAMES = ("Mary", "John", "Tom", "James", "Anna", "Paul", "Sarah", "David", "Emma", "Michael", "Lisa", "Mark",
         "Laura", "Peter", "Kate", "Daniel", "Alice", "Robert", "Susan", "Chris", "Jessica", "Andrew", "Rachel",
         "Kevin", "Linda", "Brian", "Amy", "Eric", "Karen", "Jason")
CONNECTIVES = ("When", "After", "While", "Once", "Before")
PLACES = ("store", "garden", "park", "school", "office", "beach", "market", "station", "house", "restaurant")
VERBS = ("gave", "handed", "sent", "brought", "passed", "threw")
OBJECTS = ("drink", "ring", "book", "gift", "ball", "letter", "key", "bag", "phone", "bottle")
FRAME = "{conn} {first} and {second} went to the {place}, {subject} {verb} a {obj} to"


def ioi_prompt(io: str, subject: str, *, io_first: bool = True, conn: str = "When", place: str = "store",
               verb: str = "gave", obj: str = "drink") -> str:
    """The IOI sentence for the two names (``io_first``: ABBA, else BABA), e.g. ``ioi_prompt("Mary", "John")`` is
    "When Mary and John went to the store, John gave a drink to"."""
    first, second = (io, subject) if io_first else (subject, io)
    return FRAME.format(conn=conn, first=first, second=second, place=place, subject=subject, verb=verb, obj=obj)


def _example(rng: random.Random) -> TaskExample:
    io, subject, *abc = rng.sample(NAMES, 5)  # IO, S, then the ABC prompt's three fresh names
    slots = {"conn": rng.choice(CONNECTIVES), "place": rng.choice(PLACES), "verb": rng.choice(VERBS),
             "obj": rng.choice(OBJECTS)}
    io_first = rng.random() < 0.5
    first, second = (io, subject) if io_first else (subject, io)
    clean = FRAME.format(first=first, second=second, subject=subject, **slots)
    corrupt = FRAME.format(first=abc[0], second=abc[1], subject=abc[2], **slots)
    return TaskExample(prompt=clean, answer=f" {io}", foil=f" {subject}", counterfactual=corrupt)


@register_task("ioi", version="1", description="indirect object identification: who gets the object",
               metric="answer: the indirect object; foil: the subject (the repeated name)",
               counterfactual="ABC: the same template with three fresh, different names",
               source="Wang et al. 2022, arXiv 2211.00593")
def generate(n: int, *, seed: int = 0) -> list[TaskExample]:
    """``n`` IOI examples drawn with ``random.Random(seed)``."""
    rng = random.Random(seed)
    return [_example(rng) for _ in range(n)]
