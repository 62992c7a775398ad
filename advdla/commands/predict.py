"""``advdla predict --model NAME "text"``: the model's top-k next tokens after the text, with probabilities."""

from __future__ import annotations

from typing import Any

from advdla.errors import AdvdlaError
from advdla.report import add_device_arg, add_format_arg, emit, progress_bar

# advdla.models (and what uses it) imports torch: imported inside the commands, so `advdla --help` starts fast


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("predict", help="top-k next tokens for a text")
    p.add_argument("text", help="the prompt")
    p.add_argument("--model", default=None,
                   help="registry name, HF hub name or local directory (default: smollm2-135m)")
    p.add_argument("--top-k", type=int, default=10, help="how many tokens to show (default: 10)")
    p.add_argument("--bos", action="store_true", help="prepend the tokenizer's BOS token")
    add_device_arg(p)
    add_format_arg(p)
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: Any) -> int:
    if args.top_k < 1:
        raise AdvdlaError(f"--top-k must be at least 1, got {args.top_k}")
    if not args.text and not args.bos:  # refused before the model loads (and before torch is imported)
        raise AdvdlaError("the text is empty: give the prompt to continue (or --bos to predict after BOS alone)")
    from advdla.models import DEFAULT_MODEL, load_model
    with progress_bar(transient=True) as tick:
        bridge = load_model(args.model or DEFAULT_MODEL, device=args.device, progress=tick)
    if args.top_k > bridge.cfg.d_vocab:
        raise AdvdlaError(f"--top-k {args.top_k} is more than the model's vocabulary of {bridge.cfg.d_vocab} tokens: "
                          f"use at most {bridge.cfg.d_vocab}")
    rows = predict(bridge, args.text, top_k=args.top_k, bos=args.bos)
    payload = {"model": bridge.advdla_card.name, "text": args.text, "predictions": rows}
    shown = [{**r, "token": repr(r["token"])} for r in rows]  # quotes make leading spaces visible
    emit(payload, args.format, tables=[(f"{bridge.advdla_card.name}: next token after {args.text!r}", shown)])
    return 0


def predict(bridge: Any, text: str, *, top_k: int = 10, bos: bool = False) -> list[dict[str, Any]]:
    """Rows of rank, token, id, prob, logit for the ``top_k`` most likely next tokens. A model whose card names a BOS
    token (Gemma) always gets it in front, as it was trained; ``bos`` adds it on any model."""
    import torch  # lazy, as advdla.models above

    tok = bridge.tokenizer
    ids = tok(text, add_special_tokens=False)["input_ids"]
    if (bos or bridge.advdla_card.bos is not None) and tok.bos_token_id is not None:
        ids = [tok.bos_token_id, *ids]
    if not ids:
        raise AdvdlaError("the text is empty after tokenization: give some text (or --bos)")
    if len(ids) > bridge.cfg.n_ctx:
        raise AdvdlaError(f"the text has {len(ids)} tokens, more than the model's context of {bridge.cfg.n_ctx}: "
                          f"use a shorter text (at most {bridge.cfg.n_ctx} tokens)")
    device = next(bridge.parameters()).device
    with torch.no_grad():
        logits = bridge(torch.tensor([ids], device=device))[0, -1].float()
    probs = logits.softmax(-1)
    top = probs.topk(min(top_k, probs.numel()))
    return [{"rank": i + 1, "token": tok.decode([t]), "id": t, "prob": round(p, 6), "logit": round(logits[t].item(), 4)}
            for i, (p, t) in enumerate(zip(top.values.tolist(), top.indices.tolist()))]
