"""The method registry: names -> attribution method classes, with the metadata result tables show.

Context: a suite asks every method the same question (each panel component's total effect on LD, see
:mod:`advdla.methods.base`); the registry maps a method's name to its class and to what a results table needs
to know about it: version, one-line description, whether it needs gradients, whether it reads the answer, and
the options the scoring harness builds it with by default (``params``, e.g. IG's ``steps``).

Plug-ins: a package adds methods without editing advdla by declaring an entry point in the group
``advdla.methods`` (:data:`ENTRY_POINT_GROUP`), for example in its ``pyproject.toml``::

    [project.entry-points."advdla.methods"]
    my-method = "my_package.attribution:MyMethod"

The entry point loads either an :class:`~advdla.methods.base.AttributionMethod` subclass (registered under the
entry point's name unless it was already registered with :func:`register_method`) or a module whose import
registers its methods. A plug-in that fails to load is skipped, and :func:`load_plugins` returns one line
saying why, for the face to print; the built-ins still work.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from advdla.errors import AdvdlaError, did_you_mean
from advdla.methods.base import AttributionMethod

__all__ = ["ENTRY_POINT_GROUP", "MethodSpec", "METHODS", "register_method", "load_plugins", "available_methods",
           "method_spec", "get_method", "resolve_methods"]

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
    params: dict[str, Any] = field(default_factory=dict, hash=False)  # the harness's default options (IG: steps)


METHODS: dict[str, MethodSpec] = {}
# Entry points seen so far ("name=value"), each with the line saying why it failed to load (None: it loaded).
_loaded_entry_points: dict[str, str | None] = {}


def register_method(name: str, *, version: str, description: str, needs_grad: bool = False, uses_truth: bool = False,
                    exact: bool = False, source: str = "builtin", params: dict[str, Any] | None = None
                    ) -> Callable[[type[AttributionMethod]], type[AttributionMethod]]:
    """Class decorator: register an :class:`AttributionMethod` subclass under ``name`` with its metadata.

    ``params``: keyword options the scoring harness builds the method with unless told otherwise (they must be
    keywords of the class's ``__init__``), e.g. ``{"steps": 16}`` for integrated gradients.
    """

    def wrap(cls: type[AttributionMethod]) -> type[AttributionMethod]:
        if not (isinstance(cls, type) and issubclass(cls, AttributionMethod)):
            raise AdvdlaError(f"method {name!r} must be an AttributionMethod subclass, got {cls!r}")
        cls.name, cls.version, cls.description = name, version, description
        cls.needs_grad, cls.uses_truth = needs_grad, uses_truth
        METHODS[name] = MethodSpec(name, version, description, cls, needs_grad, uses_truth, exact, source,
                                   dict(params or {}))
        return cls

    return wrap


def load_plugins() -> list[str]:
    """Import every not-yet-loaded ``advdla.methods`` entry point.

    Returns one line per plug-in that failed to load (in this call or an earlier one), for the face to print:
    nothing here writes to the terminal.
    """
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = f"{ep.name}={ep.value}"
        if key in _loaded_entry_points:
            continue
        _loaded_entry_points[key] = None
        try:
            _register_entry_point(ep)
        except Exception as exc:  # a broken plug-in must not take the built-ins down
            _loaded_entry_points[key] = (f"plug-in method {ep.name!r} ({ep.value}) failed to load: "
                                         f"{type(exc).__name__}: {exc}")
    return [line for line in _loaded_entry_points.values() if line]


def _register_entry_point(ep: Any) -> None:
    obj = ep.load()
    if isinstance(obj, type) and issubclass(obj, AttributionMethod):
        if not any(spec.cls is obj for spec in METHODS.values()):
            register_method(ep.name, version=str(getattr(obj, "version", "0")),
                            description=obj.description or obj.__doc__ or "", needs_grad=obj.needs_grad,
                            source=f"entry point {ep.value}")(obj)
    elif not isinstance(obj, ModuleType):  # a module: importing it registered its methods
        raise AdvdlaError("the entry point must name an AttributionMethod subclass or a module that registers methods")


def available_methods() -> dict[str, MethodSpec]:
    """Every registered method (built-ins and plug-ins that loaded), by name."""
    load_plugins()
    return dict(METHODS)


def method_spec(name: str) -> MethodSpec:
    """The spec registered under ``name``; unknown names raise AdvdlaError with a did-you-mean."""
    known = available_methods()
    if name not in known:
        raise AdvdlaError(f"unknown method {name!r}: known methods are {', '.join(known)}."
                          f"{did_you_mean(name, list(known))}")
    return known[name]


def get_method(name: str, **params: Any) -> AttributionMethod:
    """An instance of the method registered under ``name``, built with exactly the keyword parameters given
    (``seed=``, ``steps=``...; the registered ``MethodSpec.params`` are the harness's to merge in)."""
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
