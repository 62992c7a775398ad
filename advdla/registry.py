"""One registry for every kind of plug-in: models, attribution methods, metrics, search objectives, samplers and
leaderboard columns.

Context (lm-evaluation-harness's ``Registry``): each kind of thing a user may add is a name -> object map with
the same behaviour: register under a unique name (``@registry.register("name")`` or ``registry.add``), look up
with a one-line error that lists what exists and suggests the nearest name, list what is there, and load
third-party additions from a Python entry-point group. What an entry knows about itself (a method's version,
a metric's direction, a column's title) is its object's own metadata: a registry holds typed specs, so each kind
keeps its fields checked by its dataclass, and the registry never needs to know them.

    >>> colours = Registry[str]("colour")
    >>> colours.add("red", "#f00")
    >>> colours.get("red")
    '#f00'
    >>> "blue" in colours, colours.names()
    (False, ['red'])

Plug-ins: a registry made with ``entry_points="advdla.methods"`` imports each entry point of that group on
:meth:`Registry.load_plugins`; what loading means is the ``on_entry_point`` callback's to say (register the
loaded object, or let the import of a module register its own). A plug-in that fails to load is skipped and
reported as one line, for the face to print; the built-ins still work.

Plug-ins without packaging: :func:`import_plugin` imports a module by name (``my_module``, found on ``sys.path`` or in
the current folder) or a Python file by path (``./my_method.py``); what its import registers is then registered,
as with an entry point that names a module.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, TypeVar

from advdla.errors import AdvdlaError, did_you_mean

__all__ = ["Registry", "import_plugin"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Named objects of one kind (``kind`` names them in messages: "unknown model 'x'")."""

    def __init__(self, kind: str, *, entry_points: str | None = None,
                 on_entry_point: Callable[[Registry[T], Any], None] | None = None) -> None:
        self.kind = kind
        self.entry_points = entry_points
        self._on_entry_point = on_entry_point
        self._items: dict[str, T] = {}
        self._plugins: dict[str, str | None] = {}  # "name=value" -> why it failed to load (None: it loaded)

    # ------------------------------------------------------------------ registering

    def add(self, name: str, obj: T, *, replace: bool = False) -> T:
        """Register ``obj`` under ``name``; a second registration of a name is refused unless ``replace``."""
        if name in self._items and not replace and self._items[name] is not obj:
            raise AdvdlaError(f"a {self.kind} named {name!r} is already registered: choose another name")
        self._items[name] = obj
        return obj

    def register(self, name: str, **kwargs: Any) -> Callable[[T], T]:
        """Decorator form of :meth:`add`: ``@registry.register("name")`` above what it registers."""
        return lambda obj: self.add(name, obj, **kwargs)

    def remove(self, name: str) -> None:
        """Forget ``name`` (tests that register a throw-away entry clean up with this)."""
        self._items.pop(name, None)

    # ------------------------------------------------------------------ looking up

    def get(self, name: str) -> T:
        """The object under ``name``; an unknown name stops with the known ones and a did-you-mean."""
        if name not in self._items:
            raise AdvdlaError(f"unknown {self.kind} {name!r}: known {self.kind}s are {', '.join(self._items)}."
                              f"{did_you_mean(name, list(self._items))}")
        return self._items[name]

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def values(self) -> list[T]:
        return list(self._items.values())

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    # ------------------------------------------------------------------ plug-ins

    def load_plugins(self) -> list[str]:
        """Import every not-yet-seen entry point of this registry's group (none without one).

        Returns one line per plug-in that failed to load, in this call or an earlier one.
        """
        if self.entry_points is None:
            return []
        for ep in importlib.metadata.entry_points(group=self.entry_points):
            key = f"{ep.name}={ep.value}"
            if key in self._plugins:
                continue
            self._plugins[key] = None
            try:
                if self._on_entry_point is None:
                    self.add(ep.name, ep.load())
                else:
                    self._on_entry_point(self, ep)
            except Exception as exc:  # a broken plug-in must not take the built-ins down
                self._plugins[key] = (f"plug-in {self.kind} {ep.name!r} ({ep.value}) failed to load: "
                                      f"{type(exc).__name__}: {exc}")
        return [line for line in self._plugins.values() if line]


def import_plugin(spec: str) -> ModuleType:
    """The module ``spec`` names: a Python file (``path/to/file.py``) or an importable module (``pkg.mod``; the
    current folder is tried too). Importing a module twice returns the first import. A module that is not found or
    fails to import stops with one line saying which and why."""
    path = Path(spec).expanduser()
    try:
        if spec.endswith(".py") or path.is_file():
            return _import_file(path)
        if spec in sys.modules:
            return sys.modules[spec]
        if importlib.util.find_spec(spec.split(".")[0]) is None and os.getcwd() not in sys.path:
            sys.path.append(os.getcwd())  # `--plugin my_module` for my_module.py here, as `python -m` would
        return importlib.import_module(spec)
    except AdvdlaError:
        raise
    except ModuleNotFoundError as exc:
        raise AdvdlaError(f"plug-in {spec!r}: no module named {exc.name!r}; give an importable module name or the "
                          f"path of a .py file") from None
    except Exception as exc:  # the plug-in's own import failed: say so in one line
        raise AdvdlaError(f"plug-in {spec!r} failed to import: {type(exc).__name__}: {exc}") from None


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise AdvdlaError(f"plug-in {path}: no such file; give the path of a .py file or a module name")
    resolved = path.resolve()
    name = f"advdla_plugin_{resolved.stem}_{hashlib.sha256(str(resolved).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, resolved)
    if module_spec is None or module_spec.loader is None:
        raise AdvdlaError(f"plug-in {path}: not a Python module; give a .py file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
