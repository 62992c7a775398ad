"""Natural controls: unmanipulated corpus windows on which DLA ranks a target high, and the near-duplicate check.

Context: beside its adversarial examples a split holds natural controls: windows of the split's own documents
(never the other split's, nor those its adversarial prompts were built on) where LD passes the margin and a
target is in DLA's top k by the rule the adversarial examples meet (:func:`advdla.attribution.magnitude_rank`).
Nothing is asked of their TE: they are what DLA sees on ordinary text, where a method must not cry wolf. How
many windows were scanned is recorded in the manifest.

Intuition: the scan draws, pass after pass, one window of each eligible document (a fresh seeded draw each
pass, up to ``splits.natural_scan`` windows in all), so that a small corpus still offers several windows a
document; a window already scanned is skipped, since documents can share text. The targets take turns (round
robin from the number found so far), so each gets controls as evenly as the windows allow. A window sharing more
than ``MAX_SPLIT_OVERLAP`` of its tokens, position by position, with a prompt of the other split is left out
(:func:`too_close`, the rule the adversarial candidates meet too): the build enforces the overlap that
:func:`advdla.suites.verify.verify_suite` checks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from advdla.attribution import dla, magnitude_rank
from advdla.components import Component
from advdla.criteria import Thresholds
from advdla.errors import AdvdlaError
from advdla.precision import effective_precision, screening_model
from advdla.progress import Step
from advdla.suites.context import BuildContext, Candidate, other_docs
from advdla.suites.truth import panel_candidates
from advdla.suites.verify import MAX_SPLIT_OVERLAP

__all__ = ["natural_candidates", "too_close"]


def too_close(tokens: tuple[int, ...], other_split_tokens: list[Int[Tensor, " pos"]]) -> bool:
    """Whether ``tokens`` shares more than MAX_SPLIT_OVERLAP of its positions with a prompt of the other split."""
    t = torch.tensor(tokens)
    return any(len(o) == len(t) and float((o == t).float().mean()) > MAX_SPLIT_OVERLAP for o in other_split_tokens)


def natural_candidates(ctx: BuildContext, split: str, *, seed: int, exclude: set[int],
                       other_split_tokens: list[Int[Tensor, " pos"]]) -> tuple[list[Candidate], dict[str, Any]]:
    """Unmanipulated windows of the split's documents where LD > margin and a target is in DLA's top k (checked in
    fp32), and what the scan did: ``scanned`` windows, its ``precision``, ``overruled_by_fp32`` (one build
    step: a resumed build reads them back)."""
    def compute() -> dict[str, Any]:
        found, info = _scan(ctx, split, seed=seed, exclude=exclude, other_split_tokens=other_split_tokens)
        return {"candidates": [c.to_json() for c in found], **info}

    done = ctx.partial.step(f"natural-{split}", compute)
    info = {"scanned": done["scanned"], "precision": done.get("precision", "fp32"),
            "overruled_by_fp32": done.get("overruled_by_fp32", 0)}
    return [Candidate.from_json(c) for c in done["candidates"]], info


def _scan(ctx: BuildContext, split: str, *, seed: int, exclude: set[int],
          other_split_tokens: list[Int[Tensor, " pos"]], batch: int = 32) -> tuple[list[Candidate], dict[str, Any]]:
    cfg, need = ctx.cfg, ctx.cfg.splits.n_natural
    info = {"scanned": 0, "precision": effective_precision(ctx.bridge, ctx.precision), "overruled_by_fp32": 0}
    if need == 0:
        return [], info
    comps, thr, found = panel_candidates(ctx.bridge.cfg), cfg.threshold_values(), []
    screen = screening_model(ctx.bridge, ctx.precision)
    for tokens, docs in _scan_windows(ctx, split, seed=seed, exclude=exclude):
        for start in range(0, len(docs), batch):
            d = dla(screen, tokens[start:start + batch], components=comps)
            for j in range(d.values.shape[0]):
                info["scanned"] += 1
                target = _natural_target(ctx, d.values[j].float(), float(d.ld[j]), comps, thr, turn=len(found))
                window = tuple(tokens[start + j].tolist())
                if target is None or too_close(window, other_split_tokens):
                    continue
                if screen is not ctx.bridge:  # a bf16 decision: the fp32 one is the one that counts
                    screened, target = target, _fp32_target(ctx, tokens[start + j], comps, thr, turn=len(found))
                    info["overruled_by_fp32"] += target != screened
                if target is not None:
                    found.append(Candidate(window, target.name, docs[start + j]))
                    if len(found) == need:
                        return found, info
            ctx.progress(Step(f"natural controls ({split})", done=len(found), total=need,
                              info=f"{info['scanned']} scanned"))
    if ctx.up_to:
        return found, info
    raise AdvdlaError(f"{split}: {len(found)} of {need} natural controls found in {info['scanned']} corpus windows "
                      f"(LD > margin and a target in DLA's top {thr.top_k}): raise splits.natural_scan or lower "
                      f"splits.n_natural")


def _fp32_target(ctx: BuildContext, tokens: Int[Tensor, " pos"], comps: list[Component], thr: Thresholds, *,
                 turn: int) -> Component | None:
    """:func:`_natural_target` of one window on the fp32 model: the re-check of a bf16 scan's choice."""
    d = dla(ctx.bridge, tokens[None], components=comps)
    return _natural_target(ctx, d.values[0], float(d.ld[0]), comps, thr, turn=turn)


def _scan_windows(ctx: BuildContext, split: str, *, seed: int, exclude: set[int]
                  ) -> Iterator[tuple[Int[Tensor, "window pos"], list[int]]]:
    """Up to ``natural_scan`` windows of the split's documents, in passes of one window per document (each pass a
    fresh seeded draw; a window already scanned, here or in another document, is skipped), so that a small corpus
    offers several windows a document."""
    cfg, left, seen = ctx.cfg, ctx.cfg.splits.natural_scan, set()
    eligible = sum(1 for d in ctx.docs[split] - exclude if ctx.windows.lengths[d] >= cfg.seq_len)
    for p in range(math.ceil(left / eligible) if eligible else 0):
        tokens, docs = ctx.windows.sample(cfg.seq_len, min(left, eligible), seed=seed + 7 + 7919 * p,
                                          exclude=other_docs(ctx, split) | exclude)
        keep = []
        for i, t in enumerate(map(tuple, tokens.tolist())):
            if t not in seen:  # documents can share text: a window is scanned once
                seen.add(t)
                keep.append(i)
        left -= min(left, eligible)
        if keep:
            yield tokens[keep], [docs[i] for i in keep]


def _natural_target(ctx: BuildContext, values: Float[Tensor, " component"], ld: float, comps: list[Component],
                    thr: Thresholds, *, turn: int) -> Component | None:
    """The first target, in round-robin order from ``turn``, that this window puts in DLA's top k (LD > margin)."""
    if not ld > thr.margin:
        return None
    k = len(ctx.targets)
    for target in (ctx.targets[(turn + i) % k] for i in range(k)):
        if int(magnitude_rank(values, comps.index(target))) <= thr.top_k:
            return target
    return None
