"""Which component a search attacks: a name the user gives, or ``auto``.

Context: a target must be patchable (a head or an MLP: the evaluator resamples its output) and must have a
downstream component, since DLA can only overstate what something later erases. ``auto`` asks the analysis for
the component whose direct effect is most compensated on a few corpus windows
(:func:`advdla.analysis.auto_target_from_windows`).
"""

from __future__ import annotations

from typing import Any

from advdla.analysis import auto_target_from_windows
from advdla.components import Component, all_components, is_downstream, parse_component
from advdla.errors import AdvdlaError

__all__ = ["resolve_target"]


def resolve_target(bridge: Any, name: str, windows: Any = None, *, seq_len: int = 24, seed: int = 0) -> Component:
    """Parse ``name`` (did-you-mean on a typo) or pick one with ``auto``; it must be patchable and have a reader."""
    if name == "auto":
        target = auto_target_from_windows(bridge, windows, seq_len=seq_len, seed=seed)
    else:
        target = parse_component(name, bridge.cfg)
    if target.kind not in ("head", "mlp"):
        raise AdvdlaError(f"target {target.name} cannot be searched: give an attention head (L<l>H<h>) or an MLP "
                          "(MLP<l>)")
    if not any(is_downstream(c, target) for c in all_components(bridge.cfg)):
        raise AdvdlaError(f"target {target.name} has no downstream component to erase what it writes, so DLA cannot "
                          f"overstate its effect: pick a component before the last layer (or a last-layer head)")
    return target
