"""How far a bf16 screen is from fp32, and how many screening decisions it flips (issue 29, item 2).

Run: ``.venv/bin/python benchmarks/precision_deviation.py [--model smollm2-135m] [--n 256] [--out FILE.json]``.

For ``n`` corpus windows of ``seq_len`` tokens (the search's candidates' length) and R fixed resamples, the search's
evaluator (:class:`advdla.search.evaluate.Evaluator`) scores a late head (the search benchmark's target) and the
auto-target candidates' usual kind in fp32 and in bf16 (:mod:`advdla.precision`). Printed, as JSON:

- per quantity (LD, target DLA, mean TE, naturalness): the largest and the median |bf16 - fp32|, over the windows
  whose top-2 tokens both precisions agree on (elsewhere LD is another metric), and how often they disagree; the
  shares (TE, DLA, DE over LD) over those of them with LD > 0.5 (below it a share divides by almost nothing);
- the screening decisions: the search's ``is_hit`` under the default thresholds and under ``advdla run``'s looser
  ones, each condition apart (rank <= top_k, LD > margin, DLA share, TE share), and the natural scan's rule
  (LD > margin and rank <= top_k): how many windows each precision calls a hit, and how many it flips either way
  (bf16 yes / fp32 no: a wasted fp32 re-verification; bf16 no / fp32 yes: a candidate not looked at).

Nothing here is asserted: it measures. The numbers are quoted in CHANGELOG.md and docs/commands.md.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from advdla.attribution import dla, magnitude_rank
from advdla.components import Component, heads_and_mlps
from advdla.corpus import TokenWindows, load_corpus
from advdla.criteria import Thresholds
from advdla.models import load_model
from advdla.search.evaluate import Evaluator, Scores
from advdla.search.objectives import is_hit

RUN_THRESHOLDS = Thresholds(top_k=5, margin=0.5, min_dla_share=0.25, max_te_share=0.15)  # advdla run's plan


def _score(evaluator: Evaluator, tokens: torch.Tensor, batch: int) -> Scores:
    parts = [evaluator(tokens[i:i + batch]) for i in range(0, len(tokens), batch)]
    return Scores(*(torch.cat([getattr(p, f) for p in parts]) for f in
                    ("tokens", "t1", "t2", "ld", "dla", "rank", "te", "naturalness", "de")))


def _deviation(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    d = (a - b).abs().flatten()
    return {"max": float(d.max()), "median": float(d.median())}


def _flips(fast: torch.Tensor, exact: torch.Tensor) -> dict[str, int]:
    return {"fp32_yes": int(exact.sum()), "bf16_yes": int(fast.sum()),
            "bf16_yes_fp32_no": int((fast & ~exact).sum()), "bf16_no_fp32_yes": int((~fast & exact).sum())}


def _conditions(s: Scores, thr: Thresholds) -> dict[str, torch.Tensor]:
    return {"rank<=top_k": s.rank <= thr.top_k, "ld>margin": s.ld > thr.margin,
            "dla_share>=min": s.dla_share >= thr.min_dla_share, "te_share<=max": s.te_share <= thr.max_te_share,
            "is_hit(dla objective)": is_hit(s, thr, "dla"), "is_hit(compensation)": is_hit(s, thr, "compensation"),
            "natural rule (ld>margin, rank<=top_k)": (s.ld > thr.margin) & (s.rank <= thr.top_k)}


def _busiest_head(bridge, tokens: torch.Tensor) -> Component:
    """The head in DLA's top 3 (among every head and MLP) on the most of ``tokens``."""
    pool = heads_and_mlps(bridge.cfg)
    d = dla(bridge, tokens, components=pool)
    counts = [(int((magnitude_rank(d.values, i) <= 3).sum()), c) for i, c in enumerate(pool) if c.kind == "head"]
    return max(counts, key=lambda x: x[0])[1]


def measure(model: str, n: int, seq_len: int, resamples: int, batch: int) -> dict:
    bridge = load_model(model)
    windows = TokenWindows(load_corpus(), bridge.tokenizer)
    tokens, docs = windows.sample(seq_len, n, seed=0)
    res = windows.sample(seq_len, resamples, seed=1, exclude=set(docs))[0]
    target = _busiest_head(bridge, tokens[:64])
    out = {"model": model, "target": target.name, "windows": n, "seq_len": seq_len, "resamples": resamples}
    scores, seconds = {}, {}
    for precision in ("fp32", "bf16"):
        evaluator = Evaluator(bridge, target, res, precision=precision)
        evaluator(tokens[:2])  # warm-up (and the bf16 copy) outside the timing
        t0 = time.perf_counter()
        scores[precision] = _score(evaluator, tokens, batch)
        seconds[precision] = time.perf_counter() - t0
    exact, fast = scores["fp32"], scores["bf16"]
    same = (exact.t1 == fast.t1) & (exact.t2 == fast.t2)
    out["seconds"] = seconds
    out["top2_disagree"] = int((~same).sum())
    out["deviation"] = {name: _deviation(getattr(fast, name)[same], getattr(exact, name)[same])
                        for name in ("ld", "dla", "te_mean", "naturalness")}
    big = same & (exact.ld > 0.5)
    out["windows_ld_over_0.5"] = int(big.sum())
    out["deviation"] |= {name: _deviation(getattr(fast, name)[big], getattr(exact, name)[big])
                         for name in ("te_share", "dla_share", "de_share")}
    out["rank_changed"] = int((fast.rank != exact.rank).sum())
    out["decisions"] = {label: {name: _flips(f, e) for (name, f), e in
                                zip(_conditions(fast, thr).items(), _conditions(exact, thr).values(), strict=True)}
                        for label, thr in (("default thresholds", Thresholds()), ("advdla run's", RUN_THRESHOLDS))}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--seq-len", type=int, default=24)
    p.add_argument("--resamples", type=int, default=8)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    result = measure(args.model, args.n, args.seq_len, args.resamples, args.batch)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
