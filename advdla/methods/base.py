"""The attribution-method interface: :class:`AttributionMethod` and the :class:`ExampleBatch` it reads.

Context: every attribution method answers one question per suite example: how much does each component of
the example's *panel* cause the logit difference LD = logit[t1] - logit[t2]? A method returns one estimate per
panel component, in panel order, of what it claims to measure (its registered *estimand*): the direct effect DE(c)
(DLA and its variants: c's contribution along the direct path to the logits) or the total effect TE(c) = LD_clean -
LD with c's input replaced by the resample's, averaged over the example's resamples (AtP, IG, patching). The suite
stores both as ground truth (``de_mean``, ``te_mean``); :mod:`advdla.scoring` compares every method with the TE and
with its own estimand.

Intuition: a method sees exactly what the suite gives it (the prompt, its resamples, t1/t2, the panel) and
nothing of the answer. The exceptions are the reference rows (``exact-te``, ``exact-de``), which read the truth and
so mark what a perfect estimator of each estimand scores.

Like optuna's ``BaseSampler``, the base class is small: one abstract method. Implementations live one per
private module (``advdla/methods/_dla.py`` ...) and register themselves by name with metadata (see
:func:`advdla.methods.register_method`). The conformance test (``tests/methods/test_methods.py``) runs over every
registered method: shape and panel order, finite values, determinism under a seed, batch invariance.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from jaxtyping import Float, Int
from torch import Tensor

from advdla.components import Component

__all__ = ["AttributionMethod", "ExampleBatch"]


@dataclass
class ExampleBatch:
    """B suite examples of the same length and the same panel size P, as tensors a method can run.

    ``panels[b]`` lists example b's components in the order the method must return them; panels may differ
    between examples (only their length is shared). ``te_mean`` and ``de_mean`` are present only for the reference
    rows (exact-te, exact-de).
    The scoring harness builds batches from suite examples (:func:`advdla.scoring.to_batch`); a method never
    reads a suite row.
    """

    tokens: Int[Tensor, "batch pos"]
    resamples: Int[Tensor, "batch r pos"]
    t1: Int[Tensor, " batch"]
    t2: Int[Tensor, " batch"]
    panels: list[list[Component]]
    targets: list[Component]
    example_ids: list[str] = field(default_factory=list)
    te_mean: Float[Tensor, "batch panel"] | None = None
    de_mean: Float[Tensor, "batch panel"] | None = None

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def n_panel(self) -> int:
        return len(self.panels[0]) if self.panels else 0

    def select(self, index: list[int]) -> ExampleBatch:
        """The sub-batch of the given examples (the conformance test scores examples one by one with it)."""
        idx = torch.tensor(index, dtype=torch.long)
        return ExampleBatch(
            tokens=self.tokens[idx],
            resamples=self.resamples[idx],
            t1=self.t1[idx],
            t2=self.t2[idx],
            panels=[self.panels[i] for i in index],
            targets=[self.targets[i] for i in index],
            example_ids=[self.example_ids[i] for i in index] if self.example_ids else [],
            te_mean=None if self.te_mean is None else self.te_mean[idx],
            de_mean=None if self.de_mean is None else self.de_mean[idx],
        )

    def union(self) -> tuple[list[Component], Int[Tensor, "batch panel"]]:
        """Every component any panel holds (sorted), and for each example the index of its panel entries in it.

        Methods that compute all components for all examples at once use it: ``values[:, index]`` after a
        ``gather`` gives the batch's [batch, panel] answer (see :meth:`gather`).
        """
        comps = sorted({c for panel in self.panels for c in panel})
        pos = {c: i for i, c in enumerate(comps)}
        return comps, torch.tensor([[pos[c] for c in panel] for panel in self.panels], dtype=torch.long)

    def gather(
        self, values: Float[Tensor, "batch union"], index: Int[Tensor, "batch panel"]
    ) -> Float[Tensor, "batch panel"]:
        """Per example, the union-ordered ``values`` picked out in that example's panel order."""
        return values.gather(1, index.to(values.device))


class AttributionMethod(ABC):
    """Estimate each panel component's total effect on LD. Subclasses set nothing by hand: the registry
    decorator (:func:`advdla.methods.register_method`) fills ``name``, ``version``, ``description`` and flags.

    Keyword-only constructor arguments are the method's parameters (``seed`` always exists; ``ig`` adds
    ``steps``); :meth:`params` reports them for result records.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    description: ClassVar[str] = ""
    needs_grad: ClassVar[bool] = False
    uses_truth: ClassVar[bool] = False
    estimand: ClassVar[str] = "total"  # "direct" for a direct-effect method: scored against the DE as well as the TE

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    @abstractmethod
    def attribute(self, model: Any, batch: ExampleBatch) -> Float[Tensor, "batch panel"]:
        """Estimates of TE(c) for every example of ``batch`` and every c of its panel, in panel order."""

    def params(self) -> dict[str, Any]:
        """The method's parameters (constructor arguments), recorded with its results."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
