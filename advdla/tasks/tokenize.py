"""A task's examples as token ids for one tokenizer: the one-token check, equal-length batches, the metric.

Context: a task (:mod:`advdla.tasks.base`) is text; whether its answer and foil are single tokens, and whether its
prompts have one token count, depends on the model's tokenizer. " Mary" is one token of SmolLM2's tokenizer but
five of a byte-level one; "32" is one token of GPT-2's but two of any tokenizer that splits digits. The metric
``logit(answer) - logit(foil)`` needs one id each, and patching needs clean and counterfactual prompts of equal
length, position by position, and a batch of equal-length prompts.

What :func:`tokenize_task` does, in order, and what each drop is counted as (``TaskBatch.dropped``):

1. Encode every prompt and counterfactual with ``add_special_tokens=False``, with ``bos`` put at position 0 when it
   is given (Gemma's card names one: ``bridge.advdla_card.bos``).
2. Drop the examples whose answer or foil is not exactly one token (``"answer or foil not one token"``).
3. Drop the examples whose counterfactual has another token count than their prompt (``"counterfactual length"``).
4. Group the rest by token count and keep the largest group (ties: the shorter prompts); the other groups are
   dropped (``"prompt length"``). :func:`tokenize_groups` returns every group instead, largest first. The templates
   are built so that this step keeps nearly everything on the tokenizers they were written for (every slot one
   word of the same frame), but it is grouping, not padding: no pad token ever enters a prompt.

So a batch may hold fewer than ``n`` examples; ``n_dropped`` says how many fewer. When no example survives, one line
says why, with the first string that is not one token and how it tokenizes.

    >>> single_token_id(tokenizer, " Mary")   # doctest: +SKIP
    AdvdlaError: ' Mary' is not one token of this tokenizer: it tokenizes as [' Ma', 'ry'] ...
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from advdla.errors import AdvdlaError
from advdla.tasks.base import TASKS, TaskExample, TaskSpec

__all__ = ["TaskBatch", "tokenize_task", "tokenize_groups", "single_token_id", "token_pieces", "encode_prompt",
           "logit_diff", "DROP_TOKEN", "DROP_COUNTERFACTUAL", "DROP_LENGTH"]

DROP_TOKEN, DROP_COUNTERFACTUAL, DROP_LENGTH = "answer or foil not one token", "counterfactual length", "prompt length"


@dataclass(frozen=True)
class TaskBatch:
    """Equal-length prompts of one task for one tokenizer, with their metric tokens and counterfactuals.

    ``counterfactual_tokens`` is None for a task without counterfactuals (``paper``); ``dropped`` counts the
    generated examples left out, by reason (the module docstring lists them)."""

    task: str
    examples: tuple[TaskExample, ...]
    tokens: Int[Tensor, "batch pos"]
    answer_ids: Int[Tensor, " batch"]
    foil_ids: Int[Tensor, " batch"]
    counterfactual_tokens: Int[Tensor, "batch pos"] | None
    dropped: dict[str, int]
    bos: int | None = None

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def summary(self) -> dict[str, Any]:
        """What ``advdla tasks show --model`` prints: sizes and drops, no tensors."""
        return {"task": self.task, "kept": len(self), "dropped": self.n_dropped, "tokens": int(self.tokens.shape[1]),
                "bos": self.bos, **{f"dropped: {k}": v for k, v in self.dropped.items()}}


def token_pieces(tokenizer: Any, text: str) -> list[str]:
    """How ``text`` tokenizes, one decoded string per token (``" Mary"`` -> ``[' Ma', 'ry']`` on some tokenizers)."""
    return [tokenizer.decode([i]) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


def single_token_id(tokenizer: Any, text: str) -> int:
    """The one token id ``text`` is; a string that is not exactly one token stops with one line naming its pieces."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        pieces = token_pieces(tokenizer, text)
        raise AdvdlaError(f"{text!r} is not one token of this tokenizer: it tokenizes as {pieces} (a leading space "
                          f"matters): choose a string that is a single token")
    return int(ids[0])


def encode_prompt(tokenizer: Any, text: str, bos: int | None = None) -> list[int]:
    """``text``'s ids without the tokenizer's special tokens, after ``bos`` when one is given."""
    ids = [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]
    return ([bos] if bos is not None else []) + ids


@dataclass(frozen=True)
class _Encoded:
    example: TaskExample
    ids: list[int]
    counterfactual: list[int] | None
    answer: int
    foil: int


def _encode_all(examples: list[TaskExample], tokenizer: Any, bos: int | None
                ) -> tuple[list[_Encoded], Counter[str], str | None]:
    """Steps 1-3 of the module docstring: the examples that pass, the drops by reason, the first one-token error."""
    kept, dropped, first_error = [], Counter[str](), None
    for ex in examples:
        try:
            answer, foil = single_token_id(tokenizer, ex.answer), single_token_id(tokenizer, ex.foil)
        except AdvdlaError as exc:
            dropped[DROP_TOKEN] += 1
            first_error = first_error or str(exc)
            continue
        ids = encode_prompt(tokenizer, ex.prompt, bos)
        cf = None if ex.counterfactual is None else encode_prompt(tokenizer, ex.counterfactual, bos)
        if cf is not None and len(cf) != len(ids):
            dropped[DROP_COUNTERFACTUAL] += 1
            continue
        kept.append(_Encoded(ex, ids, cf, answer, foil))
    return kept, dropped, first_error


def _batch(name: str, group: list[_Encoded], dropped: dict[str, int], bos: int | None) -> TaskBatch:
    cfs = [e.counterfactual for e in group]
    return TaskBatch(task=name, examples=tuple(e.example for e in group),
                     tokens=torch.tensor([e.ids for e in group], dtype=torch.long),
                     answer_ids=torch.tensor([e.answer for e in group], dtype=torch.long),
                     foil_ids=torch.tensor([e.foil for e in group], dtype=torch.long),
                     counterfactual_tokens=None if any(c is None for c in cfs) else torch.tensor(cfs, dtype=torch.long),
                     dropped=dropped, bos=bos)


def tokenize_groups(task: str | TaskSpec, tokenizer: Any, n: int, seed: int = 0, bos: int | None = None
                    ) -> list[TaskBatch]:
    """Every equal-length group of the task's ``n`` examples for ``seed`` as its own batch, largest first (ties:
    shorter first); each batch counts the examples in the other groups as dropped for prompt length."""
    spec = TASKS.get(task) if isinstance(task, str) else task
    examples = spec.examples(n, seed=seed)
    kept, dropped, first_error = _encode_all(examples, tokenizer, bos)
    if not kept:
        why = first_error or "every counterfactual has another token count than its prompt"
        raise AdvdlaError(f"task {spec.name}: all {len(examples)} examples were dropped on this tokenizer: {why}")
    by_length: dict[int, list[_Encoded]] = {}
    for e in kept:
        by_length.setdefault(len(e.ids), []).append(e)
    groups = sorted(by_length.values(), key=lambda g: (-len(g), len(g[0].ids)))
    out = []
    for group in groups:
        reasons = dict(dropped)
        if len(group) < len(kept):
            reasons[DROP_LENGTH] = len(kept) - len(group)
        out.append(_batch(spec.name, group, reasons, bos))
    return out


def tokenize_task(task: str | TaskSpec, tokenizer: Any, n: int, seed: int = 0, bos: int | None = None) -> TaskBatch:
    """The task's ``n`` examples for ``seed`` as one equal-length batch: the largest group of
    :func:`tokenize_groups` (the module docstring says what is dropped and why)."""
    return tokenize_groups(task, tokenizer, n, seed, bos)[0]


def logit_diff(logits: Float[Tensor, "batch pos vocab"], batch: TaskBatch) -> Float[Tensor, " batch"]:
    """The task metric per example: ``logit(answer) - logit(foil)`` at the last position."""
    last = logits[:, -1, :]
    rows = torch.arange(last.shape[0])
    return last[rows, batch.answer_ids] - last[rows, batch.foil_ids]
