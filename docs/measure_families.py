"""How much DLA and the causal effects disagree on each real model: the README's Gemma-vs-SmolLM2 numbers.

Run: ``python docs/measure_families.py [--n 16] [--seq-len 16] [--resamples 4] [--out families.json]``.

On the same seeded corpus windows for each model (BOS in front on Gemma), every head's and MLP's DLA, DE, TE
(:func:`advdla.patching.truth_effects`, each over the same unrelated same-length resamples) as shares of the
example's LD, and per model:

- cancellation: sum over components of |DLA| / |LD| (1.0 would mean no component works against another);
- Spearman correlations of DLA with DE and with TE over every (prompt, component);
- misled: the share of (prompt, component) pairs where DLA claims at least 30% of LD and |TE| is at most 10%
  of it (the search's definition of an adversarial target, on unselected text), and how many of those are
  compensation (|DE| >= 30% of LD: later components undo it) rather than baseline (DE small too);
- the indirect effect's share: median |TE - DE| / |DE| over components with |DE| >= 10% of LD.
"""

from __future__ import annotations

import argparse
import json

import torch

from advdla.attribution import dla
from advdla.components import heads_and_mlps
from advdla.corpus import TokenWindows, load_corpus
from advdla.models import load_model
from advdla.patching import truth_effects


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = a.argsort().argsort().double(), b.argsort().argsort().double()
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def measure(name: str, *, n: int, seq_len: int, resamples: int) -> dict:
    bridge = load_model(name)
    windows = TokenWindows(load_corpus(), bridge.tokenizer)
    tokens, docs = windows.sample(seq_len, n, seed=0)
    res = windows.sample(seq_len, resamples, seed=1, exclude=set(docs))[0]
    comps = heads_and_mlps(bridge.cfg)
    rows = []
    for i in range(n):
        d = dla(bridge, tokens[i:i + 1], components=comps)
        te, de, _ = truth_effects(bridge, tokens[i:i + 1], res, comps, t1=d.t1, t2=d.t2)
        ld = d.ld.abs().clamp(min=1e-3)
        rows.append((d.values[0] / ld, de.mean[0] / ld, te.mean[0] / ld, d.values[0].abs().sum() / ld))
    dla_s, de_s, te_s = (torch.stack([r[k] for r in rows]) for k in range(3))
    misled = (dla_s.abs() >= 0.3) & (te_s.abs() <= 0.1)
    big_de = de_s.abs() >= 0.1
    return {
        "model": name, "prompts": n, "seq_len": seq_len, "resamples": resamples, "components": len(comps),
        "cancellation_median": float(torch.stack([r[3] for r in rows]).median()),
        "spearman_dla_de": _spearman(dla_s.flatten(), de_s.flatten()),
        "spearman_dla_te": _spearman(dla_s.flatten(), te_s.flatten()),
        "misled_share": float(misled.float().mean()),
        "misled_pairs": int(misled.sum()),
        "misled_compensation": int((misled & (de_s.abs() >= 0.3)).sum()),
        "claims_30pct": int((dla_s.abs() >= 0.3).sum()),
        "ie_over_de_median": float(((te_s - de_s).abs() / de_s.abs())[big_de].median()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=16)
    p.add_argument("--resamples", type=int, default=4)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    out = [measure(m, n=args.n, seq_len=args.seq_len, resamples=args.resamples)
           for m in ("smollm2-135m", "gemma-3-270m")]
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
