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
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from advdla.errors import AdvdlaError, did_you_mean

__all__ = ["Registry"]

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
