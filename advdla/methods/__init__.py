"""Attribution methods, registered by name with metadata; third-party methods plug in through entry points.

- :mod:`advdla.methods.base`: the interface, :class:`AttributionMethod` and the :class:`ExampleBatch` it reads;
- :mod:`advdla.methods.registry`: names -> classes with metadata (:class:`MethodSpec`, :func:`register_method`),
  plug-ins from the ``advdla.methods`` entry-point group (:func:`load_plugins`), lookup with did-you-mean;
- one private module per built-in, re-exported here like optuna's samplers: ``dla``, ``dla-erasure-aware``,
  ``atp``, ``atp-star``, ``ig``, ``output-patching``, ``random``, ``oracle``. Importing this package
  registers them.
"""

from __future__ import annotations

# The built-ins register on import, in this order: the order ``all`` lists them in (and result tables show).
from advdla.methods._dla import DLA  # isort: skip
from advdla.methods._dla_erasure_aware import ErasureAwareDLA  # isort: skip
from advdla.methods._atp import AtP  # isort: skip
from advdla.methods._atp_star import AtPStar  # isort: skip
from advdla.methods._ig import IntegratedGradients  # isort: skip
from advdla.methods._output_patching import OutputPatching  # isort: skip
from advdla.methods._random import RandomBaseline  # isort: skip
from advdla.methods._oracle import Oracle  # isort: skip
from advdla.methods.base import AttributionMethod, ExampleBatch
from advdla.methods.registry import (
                                     ENTRY_POINT_GROUP,
                                     METHODS,
                                     MethodSpec,
                                     available_methods,
                                     get_method,
                                     load_plugins,
                                     method_spec,
                                     register_method,
                                     resolve_methods,
)

__all__ = [
    "AttributionMethod", "ExampleBatch", "MethodSpec", "METHODS", "ENTRY_POINT_GROUP", "register_method", "get_method",
    "method_spec", "available_methods", "resolve_methods", "load_plugins",
    "DLA", "ErasureAwareDLA", "AtP", "AtPStar", "IntegratedGradients", "OutputPatching", "RandomBaseline", "Oracle",
]
