"""``advdla analyze`` as one call: sample corpus windows, find the writers, analyse each, scan for erasers, and rank
the components DLA overrates and the auto targets.

Context: the paper (Janiak et al., GELU-4L) measured erasure on one model with one writer it knew. :func:`analyze`
runs the same measurements on any model with the writers it finds itself (:mod:`advdla.analysis.writers`), with an
optional scan of every earlier head (:mod:`advdla.analysis.scan`), and puts next to them the causal rankings
(:mod:`advdla.analysis.targets`): what DLA overstates, and which component a search should target.

Intuition: the costs differ by orders of magnitude. DLA and the PRs need one clean forward plus one or two patched
forwards per writer; total effects cost a partial forward per (candidate, prompt, resample). So the rankings use
only the first ``te_prompts`` prompts and the ``overrated_top`` candidates by |DLA|, the scan its own ``scan_prompts``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from jaxtyping import Int
from torch import Tensor

from advdla.analysis.activations import after_writer_hook, clean_run, component_output
from advdla.analysis.scan import EraserPair, eraser_pairs, scan_erasers
from advdla.analysis.targets import overrated_components, rank_targets
from advdla.analysis.writers import (
    Criteria,
    Note,
    WriterAnalysis,
    WriterRow,
    analyze_writer,
    check_writer,
    discover_writers,
    writer_norm_ratio,
)
from advdla.atomic import nan_to_none
from advdla.attribution import DLAResult, check_context, check_tokens, dla
from advdla.components import Component, parse_component
from advdla.corpus import TokenWindows, load_corpus
from advdla.errors import AdvdlaError
from advdla.models.bridge import post_norms

__all__ = ["sample_prompts", "Analysis", "analyze"]


def sample_prompts(bridge: Any, *, n: int, seq_len: int, resamples: int, seed: int, corpus: str = "builtin"
                   ) -> tuple[Int[Tensor, "n pos"], Int[Tensor, "r pos"]]:
    """``n`` corpus windows of ``seq_len`` tokens, and ``resamples`` windows from other documents (shared by all)."""
    if n < 1 or resamples < 1:
        raise AdvdlaError(f"need at least 1 prompt and 1 resample, got {n} prompts and {resamples} resamples")
    if seq_len < 2:
        raise AdvdlaError(f"prompts need at least 2 tokens (the metric reads the last position's prediction), "
                          f"got --seq-len {seq_len}")
    check_context(bridge, seq_len, f"analysis prompts and resamples of --seq-len {seq_len}")
    windows = TokenWindows(load_corpus(corpus), bridge.tokenizer)
    tokens, docs = windows.sample(seq_len, n, seed=seed)
    res, _ = windows.sample(seq_len, resamples, seed=seed + 1, exclude=set(docs))
    return tokens, res


@dataclass
class Analysis:
    """The ``advdla analyze`` result: the sample, the writers, one analysis per writer, the overrated components."""

    model: str
    prompts: int
    seq_len: int
    resamples: int
    seed: int
    centre: bool
    first_pos: int
    criteria: Criteria
    writers: list[WriterRow]
    analyses: list[WriterAnalysis]
    overrated: list[dict[str, Any]]
    mean_ld: float
    te_prompts: int = 0
    erasers: list[EraserPair] = field(default_factory=list)  # the analysed writers' erasers, then the scan's
    targets: list[dict[str, Any]] = field(default_factory=list)  # rank_targets: compensated direct effect
    scan: dict[str, Any] | None = None  # with --scan: prompts, candidate pairs tested, pairs confirmed

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON; the per-point scatter (thousands of floats, for the plots) is left out."""
        out = asdict(self)
        for wa in out["analyses"]:
            wa.pop("scatter")
        return nan_to_none(out)


def analyze(bridge: Any, tokens: Int[Tensor, "batch pos"], resamples: Int[Tensor, "r pos"], *,
            writers: list[Component] | None = None, n_writers: int = 4, centre: bool = True, first_pos: int = 1,
            criteria: Criteria | None = None, overrated_top: int = 12, te_prompts: int = 16, seed: int = 0,
            step: Note | None = None, scan: bool = False, scan_prompts: int = 16) -> Analysis:
    """Discover (or take) writers, analyse each, rank the overrated components and the auto targets; with ``scan``,
    also :func:`scan_erasers` over the first ``scan_prompts`` prompts. ``step(msg)`` reports progress.

    The overrated and target rankings cost a partial forward per (candidate, prompt, resample): they use the first
    ``te_prompts`` prompts and the ``overrated_top`` components by |DLA|.
    """
    crit, step = criteria or Criteria(), step or (lambda s: None)
    tokens = check_tokens(bridge, tokens)
    step("writers: DLA over the sample")
    full = dla(bridge, tokens)
    ranked = discover_writers(bridge, tokens, top=max(3 * n_writers, 6), dla_result=full)
    chosen = ([check_writer(w, bridge.cfg) for w in writers] if writers
              else [parse_component(r.component, bridge.cfg) for r in ranked])
    step("clean forward")
    clean = clean_run(bridge, tokens, chosen)
    rows = _writer_rows(bridge, ranked, chosen, clean, tokens, first_pos, centre, crit, auto=writers is None)
    todo = [parse_component(r.component, bridge.cfg) for r in rows if not r.skipped]
    analyses = [analyze_writer(bridge, tokens, comp, clean=clean, centre=centre, first_pos=first_pos, criteria=crit,
                               step=step) for comp in (todo[:n_writers] if writers is None else todo)]
    del clean  # the cache of every downstream output: free it before the rankings' many forwards
    n_te = min(te_prompts, tokens.shape[0])
    over, targets = _rankings(bridge, tokens[:n_te], resamples, full, overrated_top=overrated_top, step=step)
    pairs, scanned = eraser_pairs(analyses), None
    if scan:
        found, tested = scan_erasers(bridge, tokens[:scan_prompts], first_pos=first_pos, criteria=crit, step=step)
        pairs += found
        scanned = {"prompts": min(scan_prompts, tokens.shape[0]), "pairs_tested": tested, "pairs_confirmed": len(found)}
    model = getattr(getattr(bridge, "advdla_card", None), "name", "?")
    return Analysis(model, tokens.shape[0], tokens.shape[1], resamples.shape[0], seed, centre, first_pos, crit, rows,
                    analyses, over, float(full.ld.abs().mean()), n_te, pairs, targets, scanned)


def _rankings(bridge: Any, tokens: Int[Tensor, "batch pos"], resamples: Int[Tensor, "r pos"], full: DLAResult, *,
              overrated_top: int, step: Note) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The overrated components and the auto targets on ``tokens`` (the first prompts of ``full``'s), as records."""
    n = tokens.shape[0]
    step(f"overrated components: total effects over {resamples.shape[0]} resamples")
    sub = DLAResult(full.components, full.values[:n], full.ld[:n], full.t1[:n], full.t2[:n])
    over = overrated_components(bridge, tokens, resamples, top=overrated_top, dla_result=sub)
    step(f"auto targets: direct and total effects over {resamples.shape[0]} resamples")
    targets = rank_targets(bridge, tokens, resamples, top=overrated_top)
    return over.to_dict("records"), targets.to_dict("records")


def _writer_rows(bridge: Any, ranked: list[WriterRow], chosen: list[Component], clean: tuple[Tensor, Any],
                 tokens: Tensor, first_pos: int, centre: bool, crit: Criteria, *, auto: bool) -> list[WriterRow]:
    """Writer rows with their norm ratios; in auto mode, tiny writers are marked skipped (not analysed)."""
    by_name = {r.component: r for r in ranked}
    rows = []
    for comp in chosen:
        row = by_name.get(comp.name) or _writer_row(bridge, tokens, comp)
        out = component_output(clean[1], comp, post_norms(bridge))[:, first_pos:]
        row.norm_ratio = writer_norm_ratio(out, clean[1][after_writer_hook(comp)][:, first_pos:], centre=centre)
        if auto and row.abs_share < crit.min_share:
            row.skipped = f"|DLA| share {row.abs_share:.1%} of |LD| (< {crit.min_share:.0%})"
        elif auto and row.norm_ratio < crit.min_norm_ratio:
            row.skipped = f"output {row.norm_ratio:.1%} of the residual's norm (< {crit.min_norm_ratio:.0%})"
        rows.append(row)
    return rows


def _writer_row(bridge: Any, tokens: Tensor, comp: Component) -> WriterRow:
    """The row of a writer the user named that :func:`discover_writers` did not rank: its DLA alone."""
    res = dla(bridge, tokens, components=[comp])
    mean_ld = res.ld.abs().mean().clamp(min=1e-6)
    mean_dla, abs_dla = res.values[:, 0].mean(), res.values[:, 0].abs().mean()
    return WriterRow(comp.name, float(mean_dla), float(mean_dla / mean_ld), float(abs_dla), float(abs_dla / mean_ld))
