"""``advdla tasks list | show NAME``: the task registry, and a task's examples (with ``--model``: as that model's
tokenizer keeps them, with each kept example's logit difference on the prompt and on its counterfactual)."""

from __future__ import annotations

from typing import Any

from advdla.errors import AdvdlaError
from advdla.report import add_device_arg, add_format_arg, emit, progress_bar

# advdla.tasks is text only (no torch); advdla.tasks.tokenize and advdla.models import torch: imported inside
# cmd_show after the arguments are checked, so a bad argument stops fast.


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("tasks", help="list the tasks (IOI and friends) and show a task's examples")
    sub = p.add_subparsers(dest="tasks_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="every registered task: metric tokens, counterfactual, source")
    add_format_arg(ls)
    ls.set_defaults(func=cmd_list)
    show = sub.add_parser("show", help="a task's generated examples; with --model, the ones its tokenizer keeps",
                          description="Print a task's examples for a seed. With --model, tokenize them for that "
                          "model (BOS first where its card names one), say how many were dropped and why, and "
                          "give each kept example's logit(answer) - logit(foil) at the last position.")
    show.add_argument("name", metavar="NAME", help="a task name (see `advdla tasks list`)")
    show.add_argument("--n", type=int, default=5, help="how many examples to generate (default: 5)")
    show.add_argument("--seed", type=int, default=0, help="the generator's seed (default: 0)")
    show.add_argument("--model", default=None, help="tokenize and run them on this model (registry name, HF hub "
                      "name or local directory); default: text only")
    add_device_arg(show)
    add_format_arg(show)
    show.set_defaults(func=cmd_show)


def cmd_list(args: Any) -> int:
    from advdla.tasks import TASKS

    rows = [{"name": s.name, "version": s.version, "description": s.description, "metric": s.metric,
             "counterfactual": s.counterfactual, "source": s.source} for s in TASKS.values()]
    emit({"tasks": rows, "metric": "logit(answer) - logit(foil) at the last position"}, args.format,
         tables=[("tasks (metric: logit(answer) - logit(foil) at the last position)", rows)])
    return 0


def _shown(text: str | None) -> str:
    """A prompt on one table line: newlines and tabs escaped."""
    return "" if text is None else text.replace("\n", "\\n").replace("\t", "\\t")


def cmd_show(args: Any) -> int:
    from advdla.tasks import TASKS

    if args.n < 1:
        raise AdvdlaError(f"--n must be at least 1, got {args.n}")
    spec = TASKS.get(args.name)
    if args.model is not None:
        return _show_on_model(args, spec)
    examples = spec.examples(args.n, seed=args.seed)
    rows = [{"i": i, "prompt": _shown(e.prompt), "answer": repr(e.answer), "foil": repr(e.foil),
             "counterfactual": _shown(e.counterfactual)} for i, e in enumerate(examples)]
    payload = {"task": spec.name, "version": spec.version, "seed": args.seed,
               "examples": [e.to_dict() for e in examples]}
    emit(payload, args.format, tables=[(f"task {spec.name} (seed {args.seed}): {spec.metric}", rows)])
    return 0


def _show_on_model(args: Any, spec: Any) -> int:
    """The examples the model's tokenizer keeps, with their logit differences on the prompt and counterfactual.
    Every equal-length group is run as its own batch (the paper's four prompts have three lengths), so only the
    one-token and counterfactual-length drops leave examples out here."""
    from advdla.models import load_model
    from advdla.tasks.tokenize import DROP_LENGTH, tokenize_groups

    with progress_bar(transient=True) as tick:
        bridge = load_model(args.model, device=args.device, progress=tick)
    card = bridge.advdla_card
    groups = tokenize_groups(spec, bridge.tokenizer, args.n, args.seed, bos=card.bos)
    examples = [ex for batch in groups for ex in _scored(bridge, batch)]
    ld = [e["ld"] for e in examples]
    dropped = {k: v for k, v in groups[0].dropped.items() if k != DROP_LENGTH}
    summary = {"task": spec.name, "model": card.name, "seed": args.seed, "kept": len(examples),
               "dropped": sum(dropped.values()), **{f"dropped: {k}": v for k, v in dropped.items()},
               "lengths": ", ".join(str(int(b.tokens.shape[1])) for b in groups), "bos": card.bos,
               "answer_preferred": sum(v > 0 for v in ld), "mean_ld": sum(ld) / len(ld)}
    rows = [{"i": i, "prompt": _shown(e["prompt"]), "answer": repr(e["answer"]), "foil": repr(e["foil"]),
             "ld": e["ld"], **({} if e["ld_counterfactual"] is None else {"ld_counterfactual": e["ld_counterfactual"]})}
            for i, e in enumerate(examples)]
    emit({**summary, "examples": examples}, args.format,
         tables=[(f"task {spec.name} on {card.name}", [{"field": k, "value": v} for k, v in summary.items()]),
                 ("kept examples (ld: logit(answer) - logit(foil) at the last position)", rows)])
    return 0


def _scored(bridge: Any, batch: Any) -> list[dict[str, Any]]:
    """Each example of one batch with its logit difference on the prompt and on its counterfactual (None: none)."""
    import torch

    from advdla.tasks.tokenize import logit_diff

    device = next(bridge.parameters()).device
    with torch.no_grad():
        ld = logit_diff(bridge(batch.tokens.to(device)).float().cpu(), batch).tolist()
        cf = ([None] * len(ld) if batch.counterfactual_tokens is None else
              logit_diff(bridge(batch.counterfactual_tokens.to(device)).float().cpu(), batch).tolist())
    return [{**e.to_dict(), "ld": a, "ld_counterfactual": b} for e, a, b in zip(batch.examples, ld, cf, strict=True)]
