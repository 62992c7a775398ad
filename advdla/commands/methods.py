"""``advdla methods list | info NAME``: the attribution methods the registry holds, built-ins and plug-ins.

Each row is the method's :class:`~advdla.methods.registry.MethodSpec`, printed field by field (whatever fields the
spec has: a new one shows up here without a change), plus its parameters with the defaults the scoring harness
uses (the registered ``params`` over the class's own keyword defaults) and, where the spec names none, a cost
class read from its flags: ``patching`` (exact patching, the most expensive), ``gradients`` (a backward pass per
batch) or ``forward`` (forward passes only).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from advdla.report import add_format_arg, emit, err_console

# advdla.methods imports torch: imported inside the commands, so `advdla --help` starts fast


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("methods", help="list the attribution methods and describe one")
    sub = p.add_subparsers(dest="methods_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="every registered method: version, role, cost, parameters")
    info = sub.add_parser("info", help="one method: every field of its spec and its parameters with defaults")
    info.add_argument("name", metavar="NAME", help="a method name, e.g. ig (see `advdla methods list`)")
    for q, func in ((ls, cmd_list), (info, cmd_info)):
        add_plugin_arg(q)
        add_format_arg(q)
        q.set_defaults(func=func)


def add_plugin_arg(parser: Any) -> None:
    """``--plugin MODULE|FILE.py`` (repeatable): methods from a module or a file, no packaging needed."""
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE|FILE.py",
                        help="import this module or .py file and register the AttributionMethod subclasses it "
                        "defines (repeatable; ADVDLA_PLUGINS=a,b does the same for every command)")


def load_all_plugins(args: Any, command: str) -> list[str]:
    """Entry points, ``ADVDLA_PLUGINS`` and ``--plugin``: warns on stderr about what failed to load (entry points
    and ADVDLA_PLUGINS; a ``--plugin`` that fails stops); returns the methods ``--plugin`` brought."""
    from advdla.methods.registry import load_plugin_modules, load_plugins

    for problem in load_plugins():
        err_console.print(f"advdla {command}: warning: {problem}", highlight=False, markup=False)
    return load_plugin_modules(list(getattr(args, "plugin", []) or []))


def parameters(name: str) -> dict[str, Any]:
    """The method's parameters with the defaults the harness builds it with (``seed`` left out: every method has it,
    and ``advdla score --seed`` sets it)."""
    from advdla.methods.registry import method_parameters, method_spec

    spec = method_spec(name)
    own = {k: (None if v is inspect.Parameter.empty else v) for k, v in method_parameters(name).items()}
    return {k: v for k, v in {**own, **spec.params}.items() if k != "seed"}


def cost_class(spec: Any) -> str:
    """The spec's own ``cost`` field where it has one, else read from its flags."""
    if getattr(spec, "cost", None):
        return str(spec.cost)
    return "patching" if spec.exact else "gradients" if spec.needs_grad else "forward"


def describe(spec: Any) -> dict[str, Any]:
    """Every field of ``spec`` but the class (as its dotted name), the cost class and the parameters."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        out[f.name] = f"{value.__module__}.{value.__qualname__}" if f.name == "cls" else value
    out.setdefault("cost", cost_class(spec))
    out["params"] = parameters(spec.name)
    return out


def _params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items()) or "-"


def cmd_list(args: Any) -> int:
    from advdla.methods.registry import available_methods

    load_all_plugins(args, "methods")
    specs = [describe(s) for s in available_methods().values()]
    rows = [{"name": d["name"], "version": d["version"], **({"estimand": d["estimand"]} if "estimand" in d else {}),
             "role": d["role"], "cost": d["cost"], "description": d["description"],
             "parameters": _params_text(d["params"])} for d in specs]
    emit({"methods": specs}, args.format, tables=[(f"{len(rows)} attribution methods (`advdla methods info NAME`)",
                                                   rows)])
    return 0


def cmd_info(args: Any) -> int:
    from advdla.methods.registry import method_spec

    load_all_plugins(args, "methods")
    d = describe(method_spec(args.name))
    rows = [{"field": k, "value": _params_text(v) if k == "params" else v} for k, v in d.items()]
    emit(d, args.format, tables=[(f"method {d['name']} v{d['version']}", rows)])
    return 0
