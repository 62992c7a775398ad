"""Attribution methods, registered by name with metadata; third-party methods plug in through entry points.

- :mod:`advdla.methods.base`: the interface, :class:`AttributionMethod` and the :class:`ExampleBatch` it reads;
- :mod:`advdla.methods.registry`: names -> classes with metadata (:class:`MethodSpec`, :func:`register_method`),
  plug-ins from the ``advdla.methods`` entry-point group (:func:`load_plugins`), lookup with did-you-mean;
- one private module per family of built-ins, re-exported here like optuna's samplers: ``dla``,
  ``dla-relative``, ``dla-erasure-aware``, ``atp``, ``atp-graddrop``, ``atp-star``, ``ig``, ``tl-dla``,
  ``tl-atp``, ``exact-patching``, ``random``, ``constant``, and the reference rows ``exact-te``, ``exact-de``.
  Importing this package registers them.

Changelog (a method's version moves whenever its numbers do, so the leaderboard keeps old and new apart):

- new: ``constant`` 1 (the same value for every component: a second uninformed baseline beside ``random``).
- ``ig`` 2: one path per component with everything downstream recomputed (version 1 moved the whole panel at
  once, clamping a writer's eraser: blind to erasure); Gauss-Legendre rule by default; converges to the TE.
- ``atp-star`` 2: the published GradDrop average (sum over all layers / (L - 1)) and verification of the top
  ``budget`` candidates by exact patching; ``atp-graddrop`` 1 is version 1's idea without verification.
- ``dla-erasure-aware`` 2: the projection ratio centred on the method resamples (version 1's uncentred ratio
  measured the shared offset, not erasure).
- renamed (numbers unchanged): ``output-patching`` 1 -> ``exact-patching`` 1 (a ranked entrant, no longer the
  noise ceiling), ``oracle`` 1 -> ``exact-te`` 1 (a reference row); new: ``exact-de`` 1.
- every method declares its estimand (``direct`` or ``total``).
- new: ``dla-relative`` 1, ``atp-graddrop`` 1, ``tl-dla`` 1, ``tl-atp`` 1.
"""

from __future__ import annotations

# The built-ins register on import, in this order: the order ``all`` lists them in (and result tables show).
from advdla.methods._dla import DLA, RelativeDLA  # isort: skip
from advdla.methods._dla_erasure_aware import ErasureAwareDLA  # isort: skip
from advdla.methods._atp import AtP  # isort: skip
from advdla.methods._atp_star import AtPGradDrop, AtPStar  # isort: skip
from advdla.methods._ig import IntegratedGradients  # isort: skip
from advdla.methods._tl import TLAttributionPatching, TLDirectLogitAttribution  # isort: skip
from advdla.methods._exact_patching import ExactPatching  # isort: skip
from advdla.methods._random import ConstantBaseline, RandomBaseline  # isort: skip
from advdla.methods._reference import ExactDE, ExactTE  # isort: skip
from advdla.methods.base import AttributionMethod, ExampleBatch
from advdla.methods.registry import (
                                     ENTRY_POINT_GROUP,
                                     ESTIMANDS,
                                     METHODS,
                                     ROLES,
                                     MethodSpec,
                                     available_methods,
                                     get_method,
                                     load_plugins,
                                     method_spec,
                                     register_method,
                                     resolve_methods,
)

__all__ = [
    "AttributionMethod", "ExampleBatch", "MethodSpec", "METHODS", "ROLES", "ESTIMANDS", "ENTRY_POINT_GROUP",
    "register_method", "get_method",
    "method_spec", "available_methods", "resolve_methods", "load_plugins",
    "DLA", "RelativeDLA", "ErasureAwareDLA", "AtP", "AtPGradDrop", "AtPStar", "IntegratedGradients",
    "TLDirectLogitAttribution", "TLAttributionPatching", "ExactPatching", "RandomBaseline", "ConstantBaseline",
    "ExactTE", "ExactDE",
]
