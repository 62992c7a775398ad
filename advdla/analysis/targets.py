"""Which components DLA overrates, and the ``auto`` target: the component whose direct effect later components undo.

Context: the discrepancy DLA - TE splits as (DLA - DE) + (DE - TE). :func:`overrated_components` ranks components
by the whole of it (mean DLA - mean TE: the paper's Figure 3). The search and the suites need more specific: a
component with a real direct effect DE in favour of the prediction that later components undo, so its total
effect TE stays small (the ``compensation`` mechanism). :func:`rank_targets` ranks by that, and is the one
ranking behind every ``auto`` target: the search's ``--target auto``, a suite's ``targets: auto``, ``advdla run``.

Intuition: a large DLA alone is no target, since the component may simply matter (TE as large); a large DE with a
small TE is one, since DLA reads DE and the truth is TE. :func:`auto_target_from_windows` is the one draw of
corpus windows that the search and the suite build both rank on, so the two agree on the target for a seed.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from jaxtyping import Int
from torch import Tensor

from advdla.analysis.activations import downstream_of
from advdla.attribution import DLAResult, check_tokens, dla
from advdla.components import Component, all_components, parse_component
from advdla.corpus import TokenWindows
from advdla.criteria import Thresholds
from advdla.errors import AdvdlaError
from advdla.patching import direct_effects, total_effects

__all__ = ["overrated_components", "rank_targets", "auto_target", "target_windows", "rank_targets_from_windows",
           "auto_target_from_windows"]

# The auto target's windows are drawn with the caller's seed plus these offsets, so that they stay apart from the
# draws the same seed makes elsewhere (the search's own prompts and resamples, a suite's splits).
PROMPT_SEED_OFFSET, RESAMPLE_SEED_OFFSET = 1000, 1001


def overrated_components(bridge: Any, tokens: Int[Tensor, "batch pos"], resamples: Int[Tensor, "r pos"], *,
                         components: list[Component] | None = None, top: int = 12, t1: Tensor | None = None,
                         t2: Tensor | None = None, batch_size: int = 64, dla_result: DLAResult | None = None,
                         kinds: tuple[str, ...] = ("head", "mlp")) -> pd.DataFrame:
    """Components ranked by how much DLA overstates their total effect: mean DLA - mean TE over prompts.

    Candidates: ``components`` if given, else the ``top`` components of ``kinds`` (``("head",)``: heads only) by
    mean |DLA| (TE costs a partial forward per component, prompt and resample: all of them would be slow on a
    large model). Returns a pandas
    DataFrame, most overrated first, with columns component, dla, te, te_std (over resamples, averaged over
    prompts), overstatement (= dla - te), overstatement_share (of the mean |LD|) and te_over_dla.
    """
    tokens = check_tokens(bridge, tokens)
    pool = list(components or [c for c in all_components(bridge.cfg) if c.kind in kinds])
    res = dla_result or dla(bridge, tokens, components=pool, t1=t1, t2=t2)
    values = res.values[:, [res.index(c) for c in pool]]
    keep = (values.abs().mean(0).argsort(descending=True)[:top].tolist() if components is None
            else list(range(len(pool))))
    comps, values = [pool[i] for i in keep], values[:, keep]
    eff = total_effects(bridge, tokens, resamples, comps, t1=res.t1, t2=res.t2, batch_size=batch_size)
    d, te = values.mean(0), eff.mean.mean(0)
    mean_ld = float(res.ld.abs().mean())
    frame = pd.DataFrame({"component": [c.name for c in comps], "dla": d.tolist(), "te": te.tolist(),
                          "te_std": eff.std.mean(0).tolist(), "overstatement": (d - te).tolist(),
                          "overstatement_share": ((d - te) / max(mean_ld, 1e-12)).tolist(),
                          "te_over_dla": (te / d).tolist()})
    return frame.sort_values("overstatement", ascending=False, ignore_index=True)


def rank_targets(bridge: Any, tokens: Int[Tensor, "batch pos"], resamples: Int[Tensor, "r pos"], *, top: int = 16,
                 kinds: tuple[str, ...] = ("head", "mlp"), min_holds: int = 2,
                 thresholds: Thresholds | None = None) -> pd.DataFrame:
    """Heads and MLPs ranked by compensated direct effect on ``tokens``: the ``auto`` targets.

    What the search's default objective (``compensation``) needs is a component with a real direct effect DE
    in favour of the prediction that later components undo, so that its total effect TE stays small. Per
    candidate, over the prompts (per prompt, so a component whose effect takes either sign still counts on the
    prompts where it supports the prediction; LD > 0 always, t1 being the top-1):

    - ``de_share`` = mean max(DE, 0) / mean LD (high) and ``te_share`` = mean |TE| / mean LD (low);
    - ``holds``: prompts with LD > margin, DE >= min_de_share LD and |TE| <= max_te_share LD (``thresholds``, a
      :class:`~advdla.criteria.Thresholds`; default its defaults);
    - ``score`` = min(de_share, 1) - 2 te_share (the compensation objective's shape, on means).

    Candidates with a positive score and at least ``min_holds`` prompts come first, then by ``score``. Only
    components of ``kinds`` with a downstream reader qualify (nothing can compensate what the others write); the
    candidates are the ``top`` of them by mean |DLA| (TE costs a partial forward per component, prompt and
    resample). Columns: component, dla, de, te (signed means over prompts), te_std, abs_dla, de_share, te_share,
    dla_share (mean |DLA| / mean LD), holds, prompts, score, overstatement (= dla - te), most promising first.
    """
    tokens = check_tokens(bridge, tokens)
    res, comps = _target_candidates(bridge, tokens, top=top, kinds=kinds)
    values = res.values[:, [res.index(c) for c in comps]]
    te = total_effects(bridge, tokens, resamples, comps, t1=res.t1, t2=res.t2)
    de = direct_effects(bridge, tokens, resamples, comps, t1=res.t1, t2=res.t2).mean
    thr = thresholds or Thresholds()
    ld, mean_ld = res.ld[:, None], float(res.ld.abs().mean().clamp(min=1e-6))
    holds = ((ld > thr.margin) & (de >= thr.min_de_share * ld) & (te.mean.abs() <= thr.max_te_share * ld))
    de_share, te_share = de.clamp(min=0).mean(0) / mean_ld, te.mean.abs().mean(0) / mean_ld
    frame = pd.DataFrame({"component": [c.name for c in comps], "dla": values.mean(0).tolist(),
                          "de": de.mean(0).tolist(), "te": te.mean.mean(0).tolist(), "te_std": te.std.mean(0).tolist(),
                          "abs_dla": values.abs().mean(0).tolist(), "de_share": de_share.tolist(),
                          "te_share": te_share.tolist(), "dla_share": (values.abs().mean(0) / mean_ld).tolist(),
                          "holds": holds.sum(0).tolist(), "prompts": tokens.shape[0],
                          "score": (de_share.clamp(max=1.0) - 2 * te_share).tolist()})
    frame["overstatement"] = frame["dla"] - frame["te"]
    frame["qualified"] = (frame["holds"] >= min_holds) & (frame["score"] > 0)
    frame = frame.sort_values(["qualified", "score"], ascending=False, ignore_index=True)
    return frame.drop(columns="qualified")


def _target_candidates(bridge: Any, tokens: Int[Tensor, "batch pos"], *, top: int, kinds: tuple[str, ...]
                       ) -> tuple[DLAResult, list[Component]]:
    """The DLA of every component of ``kinds`` with a downstream reader, and the ``top`` of them by mean |DLA|."""
    pool = [c for c in all_components(bridge.cfg) if c.kind in kinds and downstream_of(bridge.cfg, c)]
    if not pool:
        raise AdvdlaError(f"no {' or '.join(kinds)} of this model has a later component to read what it writes, so "
                          "DLA cannot overstate any effect: pick a model with at least two layers")
    res = dla(bridge, tokens, components=pool)
    return res, [pool[i] for i in res.values.abs().mean(0).argsort(descending=True)[:top].tolist()]


def auto_target(bridge: Any, tokens: Int[Tensor, "batch pos"], resamples: Int[Tensor, "r pos"], *, top: int = 16,
                **kwargs: Any) -> Component:
    """The component with the most compensated direct effect: the first row of :func:`rank_targets`."""
    frame = rank_targets(bridge, tokens, resamples, top=top, **kwargs)
    return parse_component(frame["component"].iloc[0], bridge.cfg)


def target_windows(windows: TokenWindows, *, seq_len: int, seed: int, n: int = 16, r: int = 4
                   ) -> tuple[Int[Tensor, "n pos"], Int[Tensor, "r pos"]]:
    """The auto target's sample: ``n`` corpus windows of ``seq_len`` tokens and ``r`` resamples from other documents,
    drawn with ``seed`` (offset, see ``PROMPT_SEED_OFFSET``)."""
    tokens, docs = windows.sample(seq_len, n, seed=seed + PROMPT_SEED_OFFSET)
    resamples = windows.sample(seq_len, r, seed=seed + RESAMPLE_SEED_OFFSET, exclude=set(docs))[0]
    return tokens, resamples


def rank_targets_from_windows(bridge: Any, windows: TokenWindows, *, seq_len: int, seed: int, n: int = 16, r: int = 4
                              ) -> pd.DataFrame:
    """:func:`rank_targets` on the :func:`target_windows` draw (a suite's ``targets: auto`` takes its top rows)."""
    tokens, resamples = target_windows(windows, seq_len=seq_len, seed=seed, n=n, r=r)
    return rank_targets(bridge, tokens, resamples)


def auto_target_from_windows(bridge: Any, windows: TokenWindows, *, seq_len: int, seed: int, n: int = 16, r: int = 4
                             ) -> Component:
    """The search's ``--target auto``: the first row of :func:`rank_targets_from_windows`."""
    frame = rank_targets_from_windows(bridge, windows, seq_len=seq_len, seed=seed, n=n, r=r)
    return parse_component(frame["component"].iloc[0], bridge.cfg)
