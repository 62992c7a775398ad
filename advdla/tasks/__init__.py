"""Tasks: the prompts circuit researchers use, each with its own metric tokens and counterfactual.

One module per task, registered in :data:`TASKS` (an :class:`advdla.registry.Registry` of :class:`TaskSpec`, like
every other kind of plug-in): ``ioi`` (Wang et al. 2022), ``greater-than`` (Hanna et al. 2023), ``capitals``
(factual recall), ``induction`` (Olsson et al. 2022) and ``paper`` (the seed paper's four prompts). A task is text
(:mod:`advdla.tasks.base`); :func:`advdla.tasks.tokenize.tokenize_task` turns it into equal-length token ids for one
tokenizer, dropping and counting the examples whose answer or foil is not one token.

This package imports no torch (``advdla tasks list`` and the commands' argument checks stay fast); the token side is
imported from :mod:`advdla.tasks.tokenize`.

    >>> from advdla.tasks import TASKS
    >>> TASKS.names()
    ['capitals', 'greater-than', 'induction', 'ioi', 'paper']
"""

from __future__ import annotations

from advdla.tasks import capitals, greater_than, induction, ioi, paper  # noqa: F401  (importing registers them)
from advdla.tasks.base import TASKS, TaskExample, TaskSpec, register_task

__all__ = ["TASKS", "TaskExample", "TaskSpec", "register_task"]
