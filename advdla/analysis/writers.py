"""Writers and what happens to their output: projection ratios with and without V-composition patching, erasers,
logit-direction compensators, and the paper's Figure 4 as line fits.

Context: DLA credits a component (the *writer*) with everything its output does to the logits directly. If a
later component (an *eraser*) reads that output and writes its negative, the writer keeps its DLA while its
causal effect is small: DLA lies. Per writer, :func:`analyze_writer` measures

- the PR (:func:`~advdla.analysis.stats.projection_ratio`) of the residual stream at every hook point, and of
  every downstream component's output, onto the writer's output, per (prompt, position), with and without
  V-composition patching (:mod:`advdla.analysis.activations`); erasers = PR reliably negative AND moved toward 0
  by patching;
- the logit-direction view: the least-squares slope of each downstream component's DLA on the writer's DLA
  across (prompt, position) pairs. Cancellation along the logit direction alone (on SmolLM2, mostly by the last
  MLPs) shows up here while the residual-space PR looks unremarkable;
- the paper's Figure 4: the writer's DLA against its erasers' summed DLA, and against its V-composition path
  (downstream DLA lost under patching), as linear fits.

Writers themselves (:func:`discover_writers`) are heads and MLPs with a large mean |DLA| per prompt (sign-aware: a
writer whose DLA takes either sign has a small signed mean but a large magnitude).

Two traps, measured on SmolLM2. (1) A writer whose output is tiny and nearly constant gives raw
PRs like -15 for every later head: |b|^2 is tiny, and the constant part aligns with every big constant
direction. So outputs are centred over batch x position before PR (``centre=True``) and writers whose centred
output norm is a small fraction of the centred residual's are skipped (``min_norm_ratio``; the planted
writer is 6-12% of the *raw* residual, whose norm is dominated by one constant direction, but far more of the
centred one). (2) Position 0 (no BOS: an attention sink with outsized norms) is left out of every statistic
(``first_pos=1``), and so of the centring mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from advdla.analysis.activations import (
    Directions,
    after_writer_hook,
    clean_run,
    component_output,
    downstream_of,
    logit_directions,
    output_hooks,
    patched_run,
    position_dla,
    residual_points,
)
from advdla.analysis.stats import Fit, Quartiles, batched_slopes, centred, linear_fit, projection_ratio, quartiles
from advdla.attribution import DLAResult, check_tokens, dla
from advdla.components import Component, heads_and_mlps, parse_component
from advdla.errors import AdvdlaError
from advdla.models.bridge import PostNorms, post_norms

__all__ = ["Note", "WriterRow", "check_writer", "discover_writers", "Criteria", "writer_norm_ratio", "pr_quartiles",
           "ComponentPR", "ResidualPR", "WriterAnalysis", "analyze_writer"]

Note = Callable[[str], None]  # a one-line progress note ("L0H1: V-composition patching of 9 components")


# -------------------------------------------------------------------------------------------- writers


@dataclass
class WriterRow:
    """A candidate writer: its mean |DLA| per prompt as a share of the mean |LD| (what ranks it), its signed mean
    DLA and that share (a writer whose DLA takes either sign has a small one), and its relative norm."""

    component: str
    dla_mean: float
    ld_share: float
    abs_dla_mean: float = float("nan")
    abs_share: float = float("nan")
    norm_ratio: float = float("nan")
    skipped: str = ""


def check_writer(name: str | Component, cfg: Any) -> Component:
    """Parse a writer and check something later can erase it (heads and MLPs, not in the last layer)."""
    comp = name if isinstance(name, Component) else parse_component(name, cfg)
    if comp.kind not in ("head", "mlp"):
        raise AdvdlaError(f"writer {comp.name}: writers are heads (L<l>H<h>) or MLPs (MLP<l>), not {comp.kind}")
    if comp.layer >= cfg.n_layers - 1:
        raise AdvdlaError(f"writer {comp.name} is in the last layer ({cfg.n_layers - 1}): no later layer can erase it; "
                          f"pick a component of layers 0..{cfg.n_layers - 2}")
    return comp


def discover_writers(bridge: Any, tokens: Int[Tensor, "batch pos"], *, top: int = 3,
                     dla_result: DLAResult | None = None) -> list[WriterRow]:
    """Heads and MLPs (not in the last layer) ranked by mean |DLA| / mean |LD| over the prompts' last positions.

    By magnitude per prompt, not by the signed mean: a writer whose DLA follows a feature of either sign (or opposes
    the prediction as often as it supports it) carries a lot of the logit difference on every prompt while its
    signed mean is near zero or negative. ``dla_result``: a :func:`~advdla.attribution.dla` of these prompts over
    (at least) those components, reused.
    """
    comps = [c for c in heads_and_mlps(bridge.cfg) if c.layer < bridge.cfg.n_layers - 1]
    res = dla_result or dla(bridge, tokens, components=comps)
    values = res.values[:, [res.index(c) for c in comps]]
    mean_ld = res.ld.abs().mean().clamp(min=1e-6)
    mean_dla, abs_dla = values.mean(0), values.abs().mean(0)
    order = abs_dla.argsort(descending=True)[:top].tolist()
    return [WriterRow(comps[i].name, float(mean_dla[i]), float(mean_dla[i] / mean_ld), float(abs_dla[i]),
                      float(abs_dla[i] / mean_ld)) for i in order]


# ------------------------------------------------------------------------------------------ criteria


@dataclass
class Criteria:
    """What makes an eraser and a compensator (recorded in the output)."""

    max_pr: float = -0.05        # eraser: median PR at most this ...
    min_recovery: float = 0.5    # ... its q75 below 0, and patching moves at least this share of it back to 0
    max_slope: float = -0.1      # compensator: DLA slope at most this, and at least 3 stderr below 0
    min_norm_ratio: float = 0.01  # skip writers whose (centred) output norm is below this share of the residual's
    # (SmolLM2's overrated late heads sit at 2-5%; its constant layer-0 writers far below 1% once centred)
    min_share: float = 0.05      # a writer carries at least this share of the mean logit difference (auto mode)


def writer_norm_ratio(writer_out: Float[Tensor, "batch pos d_model"], resid: Float[Tensor, "batch pos d_model"], *,
                      centre: bool = True) -> float:
    """median |writer output| / median |residual right after it|, both centred over batch x position by default."""
    if centre:
        writer_out, resid = centred(writer_out), centred(resid)
    return float(writer_out.norm(dim=-1).median() / resid.norm(dim=-1).median().clamp(min=1e-12))


def pr_quartiles(out: Float[Tensor, "batch pos d_model"], w: Float[Tensor, "batch pos d_model"], centre: bool
                 ) -> Quartiles:
    """Quartiles of PR(out, w) over batch x position, ``out`` centred first when ``centre`` (``w`` already is)."""
    return quartiles(projection_ratio(centred(out) if centre else out, w))


def _is_eraser(pr: Quartiles, recovery: float, crit: Criteria) -> bool:
    return pr.median <= crit.max_pr and pr.q75 < 0 and recovery >= crit.min_recovery


# ------------------------------------------------------------------------------------------ per writer


@dataclass
class ComponentPR:
    """A downstream component's PR onto the writer, with and without V-composition patching, and its DLA slope."""

    component: str
    pr: Quartiles
    pr_vcomp: Quartiles
    recovery: float  # (median_vcomp - median) / -median: 1 = patching removes all of the erasure
    dla_slope: float  # d DLA(component) / d DLA(writer), across (prompt, position)
    dla_slope_stderr: float
    eraser: bool = False


def _is_compensator(row: ComponentPR, crit: Criteria) -> bool:
    return row.dla_slope <= crit.max_slope and row.dla_slope < -3 * row.dla_slope_stderr


@dataclass
class ResidualPR:
    """PR of the residual stream at one hook point onto the writer, with and without V-composition patching."""

    hook: str
    label: str
    pr: Quartiles
    pr_vcomp: Quartiles


@dataclass
class WriterAnalysis:
    """Everything measured about one writer on one sample."""

    writer: str
    norm_ratio: float
    receivers: list[str]  # components patched for the residual's "with V-comp" curve
    components: list[ComponentPR]
    residual: list[ResidualPR]
    erasers: list[str]
    compensators: list[str]  # reliably negative DLA slope: cancellation along the logit direction
    fits: dict[str, Fit]
    scatter: dict[str, list[float]] = field(default_factory=dict)  # writer DLA and the fits' y values, for plots
    warning: str = ""


def analyze_writer(bridge: Any, tokens: Int[Tensor, "batch pos"], writer: Component, *,
                   clean: tuple[Tensor, Any] | None = None, centre: bool = True, first_pos: int = 1,
                   criteria: Criteria | None = None, step: Note | None = None) -> WriterAnalysis:
    """PRs, erasers, DLA slopes and fits for one writer. ``clean``: (logits, cache) of :func:`clean_run`, reused."""
    crit, step = criteria or Criteria(), step or (lambda s: None)
    writer = check_writer(writer, bridge.cfg)
    tokens = check_tokens(bridge, tokens)
    if tokens.shape[1] <= first_pos + 1:
        raise AdvdlaError(f"prompts of {tokens.shape[1]} tokens leave too few positions after position {first_pos}: "
                          "use a longer --seq-len")
    logits, cache = clean or clean_run(bridge, tokens, [writer])
    down = downstream_of(bridge.cfg, writer)
    sl = slice(first_pos, None)
    post = post_norms(bridge)
    w_full = component_output(cache, writer, post)  # V-comp removes the writer's output, all positions
    w = (centred(w_full[:, sl]) if centre else w_full[:, sl])
    ratio = writer_norm_ratio(w_full[:, sl], cache[after_writer_hook(writer)][:, sl], centre=centre)

    step(f"{writer.name}: V-composition patching of {len(down)} components")
    with torch.inference_mode():
        patched = patched_run(bridge, tokens, w_full, down, cache, output_hooks(down))
    d = logit_directions(bridge, logits, cache, first_pos)
    comp_rows, fits, scatter = _component_rows(cache, patched, down, writer, w, d, centre, crit, post)
    erasers = [r.component for r in comp_rows if r.eraser]
    compensators = [r.component for r in comp_rows if _is_compensator(r, crit)]

    step(f"{writer.name}: residual PR with its erasers patched")
    receivers = [c for c in down if c.name in erasers] or down
    with torch.inference_mode():
        res_patched = patched if receivers == down else patched_run(bridge, tokens, w_full, receivers, cache, set())
    residual = [ResidualPR(h, label, pr_quartiles(cache[h][:, sl], w, centre),
                           pr_quartiles(res_patched[h][:, sl], w, centre))
                for h, label in residual_points(bridge.cfg, writer)]
    warning = (f"{writer.name}'s output is only {ratio:.1%} of the residual's norm: its PRs are unreliable"
               if ratio < crit.min_norm_ratio else "")
    return WriterAnalysis(writer.name, ratio, [c.name for c in receivers], comp_rows, residual, erasers,
                          compensators, fits, scatter, warning)


def _component_rows(cache: Any, patched: Any, down: list[Component], writer: Component, w: Tensor, d: Directions,
                    centre: bool, crit: Criteria, post: PostNorms | None = None
                    ) -> tuple[list[ComponentPR], dict[str, Fit], dict[str, list[float]]]:
    """Per downstream component: PR with/without patching, recovery, DLA slope; then the Figure-4 fits."""
    sl = slice(d.first_pos, None)
    writer_dla = position_dla(cache, [writer], d, post)[:, 0]
    down_dla = position_dla(cache, down, d, post)
    down_dla_patched = position_dla(patched, down, d, post)  # clean final scale and directions: frozen, as in DLA
    slope, stderr = batched_slopes(writer_dla, down_dla)
    rows = []
    for i, c in enumerate(down):
        pr = pr_quartiles(component_output(cache, c, post)[:, sl], w, centre)
        pr_v = pr_quartiles(component_output(patched, c, post)[:, sl], w, centre)
        recovery = (pr_v.median - pr.median) / -pr.median if pr.median < -0.01 else float("nan")  # undefined near 0
        row = ComponentPR(c.name, pr, pr_v, recovery, float(slope[i]), float(stderr[i]))
        row.eraser = _is_eraser(pr, recovery, crit)
        rows.append(row)
    fits, scatter = _figure4_fits(writer, writer_dla, down_dla, down_dla - down_dla_patched, rows, crit)
    return rows, fits, scatter


def _figure4_fits(writer: Component, writer_dla: Float[Tensor, " n"], down_dla: Float[Tensor, "n comp"],
                  lost: Float[Tensor, "n comp"], rows: list[ComponentPR], crit: Criteria
                  ) -> tuple[dict[str, Fit], dict[str, list[float]]]:
    """The writer's DLA against its V-composition path (``lost``: downstream DLA lost under patching, summed), its
    erasers' summed DLA and its compensators', as fits, and the points they fit (for the plots)."""
    path = lost.sum(-1)
    x_label = f"DLA({writer.name})"
    fits = {"vcomp_path": linear_fit(writer_dla, path, x_label=x_label, y_label="DLA of its V-composition path")}
    scatter = {"writer_dla": writer_dla.tolist(), "vcomp_path": path.tolist()}
    groups = (("erasers", [r.eraser for r in rows]), ("compensators", [_is_compensator(r, crit) for r in rows]))
    for key, members in groups:
        chosen = torch.tensor(members)
        if chosen.any():
            summed = down_dla[:, chosen].sum(-1)
            fits[key] = linear_fit(writer_dla, summed, x_label=x_label, y_label=f"summed DLA of its {key}")
            scatter[key] = summed.tolist()
    return fits, scatter
