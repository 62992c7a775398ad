"""What a task is: a seeded template generator whose examples carry their own metric tokens and counterfactual.

Context: circuit research measures a model on tasks with a known answer (IOI, greater-than, factual recall,
induction). Each example names two strings, the ``answer`` and the ``foil``, and the metric is the logit difference
``logit(answer) - logit(foil)`` at the last position (DESIGN.md's metric with the two tokens named by the task rather
than taken from the clean run's top two). Each example also carries a ``counterfactual``: the same template with the
one thing changed that should flip or erase the answer (IOI's ABC names, greater-than's "01" start year), the
corruption a task-aware patch swaps in.

Intuition: a task is a pure function ``generate(n, seed=...) -> list[TaskExample]`` of text only, so it is tested
without a model and gives the same examples on any machine (``random.Random(seed)``, never torch's generator).
Whether an answer is one token depends on the tokenizer in use; that check, and the equal-length batching, belong
to :func:`advdla.tasks.tokenize.tokenize_task`.

    >>> from advdla.tasks import TASKS
    >>> ex = TASKS["ioi"].generate(1, seed=0)[0]
    >>> ex.prompt.endswith(" to"), ex.answer != ex.foil
    (True, True)

Registering a task (one module per task, as methods are registered)::

    @register_task("my-task", version="1", description="...", metric="...", counterfactual="...", source="...")
    def generate(n: int, *, seed: int = 0) -> list[TaskExample]: ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from advdla.errors import AdvdlaError
from advdla.registry import Registry

__all__ = ["TaskExample", "TaskSpec", "TASKS", "register_task", "Generator"]


@dataclass(frozen=True)
class TaskExample:
    """One prompt with its metric tokens (``logit(answer) - logit(foil)`` at its last position) and its
    counterfactual prompt (None where the task has none: the default corruption, unrelated same-length text,
    applies)."""

    prompt: str
    answer: str
    foil: str
    counterfactual: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"prompt": self.prompt, "answer": self.answer, "foil": self.foil, "counterfactual": self.counterfactual}


# ``generate(n, seed=seed) -> n examples``: the same (n, seed) always gives the same examples
Generator = Callable[..., list[TaskExample]]


@dataclass(frozen=True)
class TaskSpec:
    """A registered task: its generator and what ``advdla tasks list`` says about it."""

    name: str
    version: str
    description: str
    generate: Generator
    metric: str           # what the answer and foil are (the metric is always logit(answer) - logit(foil))
    counterfactual: str   # what the counterfactual changes, or why there is none
    source: str           # where the task comes from (a paper)

    def examples(self, n: int, *, seed: int = 0) -> list[TaskExample]:
        """``n`` examples for ``seed``, checked: ``n`` must be positive."""
        if n < 1:
            raise AdvdlaError(f"task {self.name}: --n must be at least 1, got {n}")
        return self.generate(n, seed=seed)


TASKS = Registry[TaskSpec]("task")


def register_task(name: str, *, version: str, description: str, metric: str, counterfactual: str,
                  source: str) -> Callable[[Generator], Generator]:
    """Decorator: register ``generate(n, *, seed) -> list[TaskExample]`` as the task ``name``."""

    def wrap(fn: Generator) -> Generator:
        TASKS.add(name, TaskSpec(name=name, version=version, description=description, generate=fn, metric=metric,
                                 counterfactual=counterfactual, source=source))
        return fn

    return wrap
