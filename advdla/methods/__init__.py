"""Attribution methods, registered by name with metadata; third-party methods plug in through entry points.

Context: a suite asks every method the same question (each panel component's total effect on LD, see
:mod:`advdla.methods.base`); the registry maps a method's name to its class and to what a results table needs
to know about it: version, one-line description, whether it needs gradients, whether it reads the answer.

Plug-ins: a package adds methods without editing advdla by declaring an entry point in the group
``advdla.methods``, for example in its ``pyproject.toml``::

    [project.entry-points."advdla.methods"]
    my-method = "my_package.attribution:MyMethod"

The entry point loads either an :class:`AttributionMethod` subclass (registered under the entry point's name
unless it was already registered with :func:`register_method`) or a module whose import registers its methods.
A plug-in that fails to load is reported in one line and skipped; the built-ins still work.

Built-ins (one private module each, re-exported here like optuna's samplers): ``dla``, ``dla-erasure-aware``,
``atp``, ``atp-star``, ``ig``, ``output-patching``, ``random``, ``oracle``.
"""

from __future__ import annotations

import importlib.metadata
import sys
from dataclasses import dataclass
from typing import Any, Callable

from advdla.errors import AdvdlaError, did_you_mean
from advdla.methods.base import AttributionMethod, ExampleBatch

ENTRY_POINT_GROUP = "advdla.methods"


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its class and the metadata result tables and records show."""

    name: str
    version: str
    description: str
    cls: type[AttributionMethod]
    needs_grad: bool = False
    uses_truth: bool = False   # reads the ground truth (only the oracle): never a real method's row
    exact: bool = False        # computes patching effects exactly (expensive) rather than estimating them
    source: str = "builtin"    # "builtin" or "entry point <value>"


METHODS: dict[str, MethodSpec] = {}
_loaded_entry_points: set[str] = set()


def register_method(name: str, *, version: str, description: str, needs_grad: bool = False, uses_truth: bool = False,
                    exact: bool = False, source: str = "builtin") -> Callable[[type[AttributionMethod]], type[AttributionMethod]]:
    """Class decorator: register an :class:`AttributionMethod` subclass under ``name`` with its metadata."""

    def wrap(cls: type[AttributionMethod]) -> type[AttributionMethod]:
        if not (isinstance(cls, type) and issubclass(cls, AttributionMethod)):
            raise AdvdlaError(f"method {name!r} must be an AttributionMethod subclass, got {cls!r}")
        cls.name, cls.version, cls.description = name, version, description
        cls.needs_grad, cls.uses_truth = needs_grad, uses_truth
        METHODS[name] = MethodSpec(name, version, description, cls, needs_grad, uses_truth, exact, source)
        return cls

    return wrap


def load_plugins() -> list[str]:
    """Import every not-yet-loaded ``advdla.methods`` entry point; return one line per plug-in that failed."""
    problems = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = f"{ep.name}={ep.value}"
        if key in _loaded_entry_points:
            continue
        _loaded_entry_points.add(key)
        try:
            _register_entry_point(ep)
        except Exception as exc:  # a broken plug-in must not take the built-ins down
            problems.append(f"plug-in method {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}")
    for line in problems:
        print(f"advdla: warning: {line}", file=sys.stderr)
    return problems


def _register_entry_point(ep: Any) -> None:
    obj = ep.load()
    if isinstance(obj, type) and issubclass(obj, AttributionMethod):
        if not any(spec.cls is obj for spec in METHODS.values()):
            register_method(ep.name, version=str(getattr(obj, "version", "0")), description=obj.description or obj.__doc__ or "",
                            needs_grad=obj.needs_grad, source=f"entry point {ep.value}")(obj)
    elif not isinstance(obj, type(sys)):  # a module: importing it registered its methods
        raise AdvdlaError("the entry point must name an AttributionMethod subclass or a module that registers methods")


def available_methods() -> dict[str, MethodSpec]:
    """Every registered method (built-ins and plug-ins), by name."""
    load_plugins()
    return dict(METHODS)


def method_spec(name: str) -> MethodSpec:
    """The spec registered under ``name``; unknown names raise AdvdlaError with a did-you-mean."""
    known = available_methods()
    if name not in known:
        raise AdvdlaError(f"unknown method {name!r}: known methods are {', '.join(known)}.{did_you_mean(name, list(known))}")
    return known[name]


def get_method(name: str, **params: Any) -> AttributionMethod:
    """An instance of the method registered under ``name``, built with its keyword parameters (``seed=``, ``steps=``...)."""
    spec = method_spec(name)
    try:
        return spec.cls(**params)
    except TypeError as exc:
        raise AdvdlaError(f"method {name!r} does not take these parameters {sorted(params)}: {exc}") from None


def resolve_methods(spec: str) -> list[str]:
    """``all`` or a comma-separated list of names -> checked method names (``all`` leaves out nothing)."""
    known = available_methods()
    if spec.strip() == "all":
        return list(known)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise AdvdlaError("--methods is empty: give 'all' or a comma-separated list such as dla,atp")
    for n in names:
        method_spec(n)
    return names


# Built-ins register themselves on import (after register_method exists).
from advdla.methods._dla import DLA  # noqa: E402
from advdla.methods._dla_erasure_aware import ErasureAwareDLA  # noqa: E402
from advdla.methods._atp import AtP  # noqa: E402
from advdla.methods._atp_star import AtPStar  # noqa: E402
from advdla.methods._ig import IntegratedGradients  # noqa: E402
from advdla.methods._output_patching import OutputPatching  # noqa: E402
from advdla.methods._random import RandomBaseline  # noqa: E402
from advdla.methods._oracle import Oracle  # noqa: E402

__all__ = [
    "AttributionMethod", "ExampleBatch", "MethodSpec", "METHODS", "ENTRY_POINT_GROUP", "register_method", "get_method",
    "method_spec", "available_methods", "resolve_methods", "load_plugins",
    "DLA", "ErasureAwareDLA", "AtP", "AtPStar", "IntegratedGradients", "OutputPatching", "RandomBaseline", "Oracle",
]
