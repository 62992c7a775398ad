"""The method registry: names -> attribution method classes, with the metadata result tables show.

Context: a suite asks every method the same question (each panel component's total effect on LD, see
:mod:`advdla.methods.base`); the registry maps a method's name to its class and to what a results table needs
to know about it: version, one-line description, whether it needs gradients, whether it reads the answer, the
row it takes on the leaderboard (``role``), and the options the scoring harness builds it with by default
(``params``, e.g. IG's ``steps``). :data:`METHODS` is one :class:`advdla.registry.Registry` of
:class:`MethodSpec`, like every other kind of plug-in.

Plug-ins: a package adds methods without editing advdla by declaring an entry point in the group
``advdla.methods`` (:data:`ENTRY_POINT_GROUP`), for example in its ``pyproject.toml``::

    [project.entry-points."advdla.methods"]
    my-method = "my_package.attribution:MyMethod"

The entry point loads either an :class:`~advdla.methods.base.AttributionMethod` subclass (registered under the
entry point's name unless it was already registered with :func:`register_method`) or a module whose import
registers its methods. A plug-in that fails to load is skipped, and :func:`load_plugins` returns one line
saying why, for the face to print; the built-ins still work.

Without packaging: :func:`load_plugin_modules` imports modules or ``.py`` files (``advdla score --plugin
my_method.py``; the environment variable ``ADVDLA_PLUGINS``, comma-separated, names some for every command); each
:class:`AttributionMethod` subclass defined there and not registered by a decorator is registered under its
``name`` attribute.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from advdla.errors import AdvdlaError, did_you_mean
from advdla.methods.base import AttributionMethod
from advdla.registry import Registry, import_plugin

__all__ = ["ENTRY_POINT_GROUP", "ROLES", "ESTIMANDS", "MethodSpec", "METHODS", "register_method", "load_plugins",
           "available_methods", "method_spec", "method_parameters", "get_method", "resolve_methods",
           "load_plugin_modules"]

ENTRY_POINT_GROUP = "advdla.methods"
# The leaderboard's row kinds: a ranked method, the noise ceiling (shown on top, computed from the truth alone), a
# reference row that reads the truth (exact-te, exact-de: what a perfect estimator of each estimand scores).
ROLES = ("method", "ceiling", "reference")
# What a method claims to estimate: a component's direct effect (DLA and its variants) or its total effect (AtP, IG,
# patching). Every method is scored against the total effect and against its own estimand.
ESTIMANDS = ("direct", "total")


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
    role: str = "method"       # the leaderboard's row kind, one of ROLES
    estimand: str = "total"    # what it estimates, one of ESTIMANDS: "direct" (DE) or "total" (TE)


def _register_entry_point(methods: Registry[MethodSpec], ep: Any) -> None:
    """Load one ``advdla.methods`` entry point: a class is registered under the entry point's name (unless it
    already is), a module registered its methods as it was imported; anything else is refused."""
    obj = ep.load()
    if isinstance(obj, type) and issubclass(obj, AttributionMethod):
        if not any(spec.cls is obj for spec in methods.values()):
            _register(methods, obj, name=ep.name, version=str(getattr(obj, "version", "0")),
                      description=obj.description or obj.__doc__ or "", needs_grad=obj.needs_grad,
                      source=f"entry point {ep.value}", estimand=getattr(obj, "estimand", "total"))
    elif not isinstance(obj, ModuleType):  # a module: importing it registered its methods
        raise AdvdlaError("the entry point must name an AttributionMethod subclass or a module that registers methods")


METHODS = Registry[MethodSpec]("method", entry_points=ENTRY_POINT_GROUP, on_entry_point=_register_entry_point)


def _register(methods: Registry[MethodSpec], cls: Any, *, name: str, version: str, description: str,
              needs_grad: bool = False, uses_truth: bool = False, **meta: Any) -> type[AttributionMethod]:
    """Check ``cls``, give it its registered name and metadata as class attributes, and add its spec."""
    if not (isinstance(cls, type) and issubclass(cls, AttributionMethod)):
        raise AdvdlaError(f"method {name!r} must be an AttributionMethod subclass, got {cls!r}")
    if meta.get("role", "method") not in ROLES:
        raise AdvdlaError(f"method {name!r} has role {meta['role']!r}: use one of {', '.join(ROLES)}")
    if meta.get("estimand", "total") not in ESTIMANDS:
        raise AdvdlaError(f"method {name!r} has estimand {meta['estimand']!r}: use one of {', '.join(ESTIMANDS)}")
    cls.name, cls.version, cls.description = name, version, description
    cls.needs_grad, cls.uses_truth, cls.estimand = needs_grad, uses_truth, meta.get("estimand", "total")
    methods.add(name, MethodSpec(name=name, version=version, description=description, cls=cls,
                                 needs_grad=needs_grad, uses_truth=uses_truth, **meta))
    return cls


def register_method(name: str, *, version: str, description: str, needs_grad: bool = False, uses_truth: bool = False,
                    exact: bool = False, source: str = "builtin", params: dict[str, Any] | None = None,
                    role: str = "method", estimand: str = "total"
                    ) -> Callable[[type[AttributionMethod]], type[AttributionMethod]]:
    """Class decorator: register an :class:`AttributionMethod` subclass under ``name`` with its metadata.

    ``params``: keyword options the scoring harness builds the method with unless told otherwise (they must be
    keywords of the class's ``__init__``), e.g. ``{"steps": 16}`` for integrated gradients. ``role``: the
    leaderboard row it takes (:data:`ROLES`): ``reference`` for the rows that read the truth (exact-te, exact-de).
    ``estimand`` (:data:`ESTIMANDS`): ``direct`` for a direct-effect method (DLA and its variants, scored against
    the DE as well as the TE), ``total`` for a total-effect method (the default; a plug-in that says nothing is
    scored as an estimate of the TE).
    """
    meta = {"exact": exact, "source": source, "params": dict(params or {}), "role": role, "estimand": estimand}
    # METHODS is looked up when the class is decorated, so a test may swap in a scratch registry.
    return lambda cls: _register(METHODS, cls, name=name, version=version, description=description,
                                 needs_grad=needs_grad, uses_truth=uses_truth, **meta)


def load_plugins() -> list[str]:
    """Import every not-yet-loaded ``advdla.methods`` entry point and every module ``ADVDLA_PLUGINS`` names.

    Returns one line per plug-in that failed to load (in this call or an earlier one), for the face to print:
    nothing here writes to the terminal.
    """
    problems = METHODS.load_plugins()
    for spec in [s.strip() for s in os.environ.get("ADVDLA_PLUGINS", "").split(",") if s.strip()]:
        try:
            load_plugin_modules([spec])
        except AdvdlaError as exc:
            problems.append(f"ADVDLA_PLUGINS: {exc}")
    return problems


def load_plugin_modules(specs: list[str]) -> list[str]:
    """Import each module or ``.py`` file in ``specs`` (:func:`advdla.registry.import_plugin`) and register the
    AttributionMethod subclasses it defines that no decorator registered (under their ``name``); returns the names
    of the methods each import brought. A module that fails to import stops with one line."""
    added: list[str] = []
    for spec in specs:
        before = set(METHODS.names())
        module = import_plugin(spec)
        for obj in list(vars(module).values()):
            if (isinstance(obj, type) and issubclass(obj, AttributionMethod) and obj.__module__ == module.__name__
                    and not inspect.isabstract(obj) and not any(s.cls is obj for s in METHODS.values())):
                if not getattr(obj, "name", None):
                    raise AdvdlaError(f"plug-in {spec}: {obj.__name__} has no `name`: set name = \"my-method\"")
                _register(METHODS, obj, name=obj.name, version=str(getattr(obj, "version", "0")),
                          description=obj.description or (obj.__doc__ or "").strip().split("\n")[0],
                          needs_grad=obj.needs_grad, source=f"plug-in {spec}",
                          estimand=getattr(obj, "estimand", "total"))
        added += [n for n in METHODS.names() if n not in before]
    return added


def available_methods() -> dict[str, MethodSpec]:
    """Every registered method (built-ins and plug-ins that loaded), by name."""
    load_plugins()
    return dict(METHODS.items())


def method_spec(name: str) -> MethodSpec:
    """The spec registered under ``name``; unknown names raise AdvdlaError with a did-you-mean."""
    load_plugins()
    return METHODS.get(name)


def method_parameters(name: str) -> dict[str, Any]:
    """The keyword parameters the method's class takes, with their defaults (``inspect.Parameter.empty``: none)."""
    sig = inspect.signature(method_spec(name).cls.__init__)
    return {p.name: p.default for p in sig.parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"}


def get_method(name: str, **params: Any) -> AttributionMethod:
    """An instance of the method registered under ``name``, built with exactly the keyword parameters given
    (``seed=``, ``steps=``...; the registered ``MethodSpec.params`` are the harness's to merge in). A parameter
    the class does not take stops with the ones it does and a did-you-mean."""
    spec = method_spec(name)
    known = method_parameters(name)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(spec.cls.__init__).parameters.values())
    unknown = [k for k in params if k not in known]
    if unknown and not takes_any:
        raise AdvdlaError(f"method {name!r} has no parameter {unknown[0]!r} (its parameters: "
                          f"{', '.join(known) or 'none'}).{did_you_mean(unknown[0], list(known))}")
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
