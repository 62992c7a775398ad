"""``advdla suite list`` and ``advdla suite show NAME --split dev [--example ID]``: browse suites without parquet.

``list`` reads only manifests (no torch): the suites in the project's ``suites/`` and ``$ADVDLA_SUITES`` by name,
with their model, version, prompt length and example counts. ``show`` prints one row per example of a split (its
prompt, target, LD, mechanism, and the target's DLA, DE and TE), or, with ``--example ID`` (a prefix is enough),
the example in full: its prompt, its tokens, t1 and t2 (the two tokens of its logit difference, as ids and as
text through the suite model's tokenizer), and the panel components with the largest |DLA| with their direct and
total effects, which is where DLA's story and the causal one part.
"""

from __future__ import annotations

from typing import Any

from advdla.commands.names import resolve_suite, shipped_suites
from advdla.errors import AdvdlaError, did_you_mean
from advdla.report import add_format_arg, emit

SPLITS = ("dev", "test")


def register(sub: Any) -> None:
    """Add ``list`` and ``show`` to ``advdla suite``'s actions."""
    ls = sub.add_parser("list", help="the shipped suites (suites/ and $ADVDLA_SUITES): name, model, version, sizes")
    add_format_arg(ls)
    ls.set_defaults(func=cmd_list)
    sh = sub.add_parser("show", help="a split's examples (prompt, target, LD, mechanism), or one example in full")
    sh.add_argument("suite", metavar="NAME", help="a suite name (`advdla suite list`) or a suite folder")
    sh.add_argument("--split", choices=SPLITS, default="dev", help="default: dev")
    sh.add_argument("--example", default=None, metavar="ID", help="one example (its id, or the start of it)")
    sh.add_argument("--kind", choices=("adversarial", "natural"), default=None, help="only this kind")
    sh.add_argument("--top", type=int, default=10, help="with --example: components shown, by |DLA| (default: 10)")
    add_format_arg(sh)
    sh.set_defaults(func=cmd_show)


def _sizes(manifest: dict[str, Any]) -> dict[str, str]:
    """``{"dev adv+nat": "12+12", "test adv+nat": ...}`` from the manifest's split counts."""
    counts = manifest.get("splits", {})
    return {f"{split} adv+nat": "+".join(str(counts.get(split, {}).get(kind, 0)) for kind in ("adversarial", "natural"))
            for split in SPLITS}


def cmd_list(args: Any) -> int:
    rows = [{"name": path.name, "version": m.get("version", "?"), "model": m.get("model", "?"),
             "tokens": m.get("config", {}).get("seq_len", "?"), **_sizes(m),
             "fingerprint": str(m.get("fingerprint", "?"))[:12], "folder": str(path)}
            for path, m in shipped_suites()]
    emit({"suites": rows}, args.format, tables=[(f"{len(rows)} suites (`advdla suite show NAME`)", rows)])
    return 0


def printable(text: str) -> str:
    """``text`` with control and other unprintable characters as ``\\xNN`` escapes (planted models' prompts hold
    arbitrary bytes), so a table never shows raw control characters."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _at(row: dict[str, Any], column: str) -> float:
    return float(row[column][row["panel"].index(row["target"])])


def example_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per example: id, kind, mechanism, target, LD, and the target's DLA, DE and TE."""
    return [{"id": r["example_id"][:8], "kind": r["kind"][:3], "mech": r["mechanism"], "target": r["target"],
             "LD": f"{r['ld']:.2f}", "DLA": f"{_at(r, 'dla'):.2f}", "DE": f"{_at(r, 'de_mean'):.2f}",
             "TE": f"{_at(r, 'te_mean'):.2f}", "prompt": printable(r["text"])} for r in rows]


def component_rows(row: dict[str, Any], top: int) -> list[dict[str, Any]]:
    """The ``top`` panel components by |DLA|: DLA, DE, TE (its spread over the truth's resamples), IE, zero-TE."""
    order = sorted(range(len(row["panel"])), key=lambda i: -abs(row["dla"][i]))[:top]
    return [{"component": row["panel"][i] + (" (target)" if row["panel"][i] == row["target"] else ""),
             **{title: f"{row[col][i]:.3f}" for title, col in (("DLA", "dla"), ("DE", "de_mean"), ("TE", "te_mean"),
                                                                ("TE spread", "te_std"), ("IE", "ie_mean"),
                                                                ("TE zero", "te_zero"))}} for i in order]


def token_texts(model: str, ids: list[int]) -> list[str] | None:
    """Each token id as its text (``repr``-quoted, so a leading space shows), through the tokenizer of the suite's
    registered ``model``; None where the model is not registered or cannot be loaded here (then ids alone are shown).
    Loading reads the model's weights too (about a second for the planted models, a few for SmolLM2)."""
    import torch  # lazy: torch, like everything that loads a model

    from advdla.models import MODELS

    if model not in MODELS:
        return None
    try:
        _, tokenizer, _ = MODELS[model].load("cpu", torch.float32, None)
    except (AdvdlaError, OSError, ValueError):
        return None
    return [printable(repr(tokenizer.decode([int(i)]))) for i in ids]


def _one(rows: list[dict[str, Any]], wanted: str, split: str) -> dict[str, Any]:
    found = [r for r in rows if r["example_id"].startswith(wanted)]
    if len(found) != 1:
        ids = [r["example_id"] for r in rows]
        what = "matches no example" if not found else f"matches {len(found)} examples: give more of the id"
        raise AdvdlaError(f"--example {wanted} {what} of the {split} split ({len(rows)} examples; `advdla suite show "
                          f"NAME --split {split}` lists their ids){did_you_mean(wanted, ids)}")
    return found[0]


def cmd_show(args: Any) -> int:
    if args.top < 1:
        raise AdvdlaError(f"--top must be at least 1, got {args.top}")
    path = resolve_suite(args.suite, flag="NAME")
    from advdla.suites import load_suite  # lazy: datasets and torch (a few seconds)

    suite = load_suite(path)
    rows = suite.rows(split=args.split, kind=args.kind)
    head = f"{suite.name} v{suite.version}, {args.split} split"
    if args.example is None:
        emit({"suite": suite.name, "version": suite.version, "split": args.split, "examples": example_rows(rows)},
             args.format, tables=[(f"{head}: {len(rows)} examples (the target's DLA, DE and TE; "
                                   f"`--example ID` for one)", example_rows(rows))])
        return 0
    row = _one(rows, args.example, args.split)
    texts = token_texts(str(suite.manifest.get("model", "")), [row["t1"], row["t2"]]) or [None, None]
    about = {"id": row["example_id"], "kind": row["kind"], "mechanism": row["mechanism"], "target": row["target"],
             "LD": row["ld"], "t1": row["t1"], "t1 text": texts[0], "t2": row["t2"], "t2 text": texts[1],
             "source_doc": row["source_doc"], "prompt": printable(row["text"]),
             "tokens": " ".join(map(str, row["tokens"]))}
    comps = component_rows(row, args.top)
    emit({**about, "components": comps}, args.format,
         tables=[(f"{head}: example {row['example_id']}", [{"field": k, "value": v} for k, v in about.items()]),
                 (f"top {len(comps)} of {len(row['panel'])} components by |DLA| (DE: direct effect, TE: total "
                  f"effect, IE = TE - DE)", comps)])
    return 0
