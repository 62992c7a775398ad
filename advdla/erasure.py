"""Erasure analysis: writers, erasers, projection ratios, V-composition patching, and the paper's figures as numbers.

Context: DLA credits a component (the *writer*) with everything its output does to the logits directly. If a
later component (an *eraser*) reads that output and writes its negative, the writer keeps its DLA while its
causal effect is small: DLA lies. The paper (Janiak et al., GELU-4L) measured this with the projection ratio

    PR(a, b) = a . b / |b|^2        (PR = -1: a cancels b exactly; PR = 1: a repeats b)

of the residual stream, and of each later head's output, onto the writer's output, per (prompt, position),
reported as medians with 25th/75th quantiles over batch x position. The proof that a later head erases *by
reading* the writer is V-composition patching: remove the writer's output from the eraser's value input (an
MLP's input, for an MLP eraser), the norm scale frozen at its clean value, and see its PR go to 0.

This module computes, for one sample of prompts:

- writers (:func:`discover_writers`): heads and MLPs with a large mean |DLA| per prompt (sign-aware: a writer
  whose DLA takes either sign has a small signed mean but a large magnitude);
- per writer (:func:`analyze_writer`): the residual PR at every hook point and every downstream component's PR
  with and without V-composition patching; erasers = PR reliably negative AND moved toward 0 by patching;
- the logit-direction view: the least-squares slope of each downstream component's DLA on the writer's DLA
  across (prompt, position) pairs. Cancellation along the logit direction alone (on SmolLM2, mostly by the last
  MLPs) shows up here while the residual-space PR looks unremarkable;
- the paper's Figure 4: the writer's DLA against its erasers' summed DLA, and against its V-composition path
  (downstream DLA lost under patching), as linear fits (``scipy.stats.linregress``);
- :func:`scan_erasers`: writer -> eraser pairs found without the logit direction: the centred PR of every later
  component onto every earlier head's output, the reliably negative pairs confirmed by V-composition patching;
- :func:`overrated_components`: DLA - TE per component, the components DLA overrates;
- :func:`rank_targets` / :func:`auto_target`: heads and MLPs ranked by compensated direct effect (a large direct
  effect DE that later components undo, so TE stays small), the one ranking behind every ``auto`` target (the
  search's ``--target auto``, a suite's ``targets: auto``, ``advdla run``).

Two traps, measured on SmolLM2. (1) A writer whose output is tiny and nearly constant gives raw
PRs like -15 for every later head: |b|^2 is tiny, and the constant part aligns with every big constant
direction. So outputs are centred over batch x position before PR (``centre=True``) and writers whose centred
output norm is a small fraction of the centred residual's are skipped (``min_norm_ratio``; the planted
writer is 6-12% of the *raw* residual, whose norm is dominated by one constant direction, but far more of the
centred one). (2) Position 0 (no BOS: an attention sink with outsized norms) is left out of every statistic
(``first_pos=1``), and so of the centring mean.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor

from advdla.atomic import nan_to_none
from advdla.attribution import DLAResult, check_context, check_tokens, dla
from advdla.components import (
    LN_FINAL_SCALE,
    RESID_POINTS,
    Component,
    all_components,
    head_components,
    is_downstream,
    parse_component,
    resid_hook,
)
from advdla.corpus import TokenWindows, load_corpus
from advdla.criteria import Thresholds
from advdla.errors import AdvdlaError
from advdla.patching import direct_effects, total_effects, v_composition_hooks

__all__ = ["Quartiles", "WriterRow", "ComponentPR", "ResidualPR", "Fit", "WriterAnalysis", "Analysis",
           "projection_ratio", "centred", "quartiles", "sample_prompts", "check_writer", "discover_writers",
           "analyze_writer", "analyze", "overrated_components", "rank_targets", "auto_target", "linear_fit",
           "EraserPair", "scan_erasers", "eraser_pairs"]

Note = Callable[[str], None]  # a one-line progress note ("L0H1: V-composition patching of 9 components")


# ------------------------------------------------------------------------------------------ small numbers


@dataclass
class Quartiles:
    """Median with 25th and 75th percentiles (over batch x position)."""

    median: float
    q25: float
    q75: float

    def __str__(self) -> str:
        return f"{self.median:+.3f} [{self.q25:+.3f}, {self.q75:+.3f}]"


def quartiles(x: Tensor) -> Quartiles:
    """Quartiles of the finite values of ``x`` (NaN where there are none)."""
    x = x.flatten().double()
    x = x[torch.isfinite(x)]
    if x.numel() == 0:
        return Quartiles(float("nan"), float("nan"), float("nan"))
    q = torch.quantile(x, torch.tensor([0.5, 0.25, 0.75], dtype=x.dtype))
    return Quartiles(*(float(v) for v in q))


def projection_ratio(a: Float[Tensor, "... d_model"], b: Float[Tensor, "... d_model"]) -> Float[Tensor, ...]:
    """PR(a, b) = a.b / |b|^2 along the last axis (NaN where b is exactly 0)."""
    return (a * b).sum(-1) / (b * b).sum(-1)


def centred(x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
    """x minus its mean over batch x position: drops the constant part that makes raw PR explode."""
    return x - x.mean((0, 1), keepdim=True)


@dataclass
class Fit:
    """A least-squares line y = slope x + intercept, with standard errors and correlation."""

    slope: float
    slope_stderr: float
    intercept: float
    intercept_stderr: float
    r: float
    n: int
    x_label: str = ""
    y_label: str = ""


def linear_fit(x: Tensor, y: Tensor, *, x_label: str = "", y_label: str = "") -> Fit:
    """``scipy.stats.linregress`` of y on x (NaN fit with fewer than 3 points or a constant x)."""
    from scipy.stats import linregress  # lazy: scipy.stats takes about a second to import, and only fits need it

    x, y = x.flatten().double().numpy(), y.flatten().double().numpy()
    if len(x) < 3 or float(x.std()) == 0.0:
        return Fit(*(float("nan"),) * 5, len(x), x_label, y_label)
    res = linregress(x, y)
    return Fit(float(res.slope), float(res.stderr), float(res.intercept), float(res.intercept_stderr),
               float(res.rvalue), len(x), x_label, y_label)


def batched_slopes(x: Float[Tensor, " n"], ys: Float[Tensor, "n comp"]) -> tuple[Tensor, Tensor]:
    """Least-squares slope of every column of ``ys`` on ``x``, and its standard error (vectorised linregress)."""
    x, ys = x.double(), ys.double()
    n = x.shape[0]
    xc, yc = x - x.mean(), ys - ys.mean(0)
    sxx = (xc * xc).sum()
    slope = (xc[:, None] * yc).sum(0) / sxx
    resid = yc - slope[None] * xc[:, None]
    stderr = ((resid * resid).sum(0) / max(n - 2, 1) / sxx).sqrt()
    return slope.float(), stderr.float()


# --------------------------------------------------------------------------------------------- sample


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
    comps = [c for c in all_components(bridge.cfg) if c.kind in ("head", "mlp") and c.layer < bridge.cfg.n_layers - 1]
    res = dla_result or dla(bridge, tokens, components=comps)
    values = res.values[:, [res.index(c) for c in comps]]
    mean_ld = res.ld.abs().mean().clamp(min=1e-6)
    mean_dla, abs_dla = values.mean(0), values.abs().mean(0)
    order = abs_dla.argsort(descending=True)[:top].tolist()
    return [WriterRow(comps[i].name, float(mean_dla[i]), float(mean_dla[i] / mean_ld), float(abs_dla[i]),
                      float(abs_dla[i] / mean_ld)) for i in order]


# ---------------------------------------------------------------------------------------- activations


def _output(cache: Any, c: Component) -> Float[Tensor, "batch pos d_model"]:
    return cache[c.output_hook][:, :, c.head] if c.kind == "head" else cache[c.output_hook]


def _output_names(comps: list[Component]) -> set[str]:
    return {c.output_hook for c in comps}


def downstream_of(cfg: Any, writer: Component) -> list[Component]:
    """Every head and MLP that can read what ``writer`` wrote, in residual order."""
    return [c for c in all_components(cfg) if is_downstream(c, writer)]


def residual_points(cfg: Any, writer: Component) -> list[tuple[str, str]]:
    """(hook name, label) of resid_pre / resid_mid / resid_post for the writer's layer and every later one."""
    return [(resid_hook(l, p), f"{p}{l}") for l in range(writer.layer, cfg.n_layers) for p in RESID_POINTS]


def _after_writer(writer: Component) -> str:
    """The first residual hook point that holds the writer's output."""
    return resid_hook(writer.layer, "mid" if writer.kind == "head" else "post")


def _vcomp_hooks(bridge: Any, writer_out: Tensor, receivers: list[Component], cache: Any) -> list:
    """V-composition hooks: writer removed from receiver heads' values (ln1 scale frozen) and MLPs' inputs (ln2)."""
    heads = [c for c in receivers if c.kind == "head"]
    mlps = [c for c in receivers if c.kind == "mlp"]
    ln1 = {c.layer: cache[c.norm_scale_hook] for c in heads}
    ln2 = {c.layer: cache[c.norm_scale_hook] for c in mlps}
    return v_composition_hooks(bridge, writer_out, heads, ln1) + v_composition_hooks(bridge, writer_out, mlps, ln2)


def _scale_names(comps: list[Component]) -> set[str]:
    return {c.norm_scale_hook for c in comps}


# ------------------------------------------------------------------------------------- DLA per position


@dataclass
class _Directions:
    """Per (prompt, position) logit directions and clean final-norm scales, positions first_pos.. only."""

    direction: Float[Tensor, "batch pos d_model"]
    scale: Float[Tensor, "batch pos"]
    first_pos: int


def _directions(bridge: Any, logits: Tensor, cache: Any, first_pos: int) -> _Directions:
    """Each position is a prompt of its own: its clean top-2 tokens give its logit direction."""
    top = logits[:, first_pos:].topk(2, dim=-1).indices  # [batch, pos, 2]
    w_u = bridge.W_U
    direction = (w_u[:, top[..., 0]] - w_u[:, top[..., 1]]).permute(1, 2, 0)
    return _Directions(direction, cache[LN_FINAL_SCALE][:, first_pos:, 0], first_pos)


def _position_dla(cache: Any, comps: list[Component], d: _Directions) -> Float[Tensor, "n comp"]:
    """DLA of each component at every (prompt, position >= first_pos), flattened to rows."""
    cols = [torch.einsum("bpd,bpd->bp", _output(cache, c)[:, d.first_pos:], d.direction) / d.scale for c in comps]
    return torch.stack(cols, -1).reshape(-1, len(comps))


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


@dataclass
class Criteria:
    """What makes an eraser and a compensator (recorded in the output)."""

    max_pr: float = -0.05        # eraser: median PR at most this ...
    min_recovery: float = 0.5    # ... its q75 below 0, and patching moves at least this share of it back to 0
    max_slope: float = -0.1      # compensator: DLA slope at most this, and at least 3 stderr below 0
    min_norm_ratio: float = 0.01  # skip writers whose (centred) output norm is below this share of the residual's
    # (SmolLM2's overrated late heads sit at 2-5%; its constant layer-0 writers far below 1% once centred)
    min_share: float = 0.05      # a writer carries at least this share of the mean logit difference (auto mode)


def writer_norm_ratio(writer_out: Tensor, resid: Tensor, *, centre: bool = True) -> float:
    """median |writer output| / median |residual right after it|, both centred over batch x position by default."""
    if centre:
        writer_out, resid = centred(writer_out), centred(resid)
    return float(writer_out.norm(dim=-1).median() / resid.norm(dim=-1).median().clamp(min=1e-12))


def _pr(out: Tensor, w: Tensor, centre: bool) -> Quartiles:
    return quartiles(projection_ratio(centred(out) if centre else out, w))


def _is_eraser(pr: Quartiles, recovery: float, crit: Criteria) -> bool:
    return pr.median <= crit.max_pr and pr.q75 < 0 and recovery >= crit.min_recovery


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
    w_full = _output(cache, writer)  # V-comp removes the writer's raw output, all positions
    w = (centred(w_full[:, sl]) if centre else w_full[:, sl])
    ratio = writer_norm_ratio(w_full[:, sl], cache[_after_writer(writer)][:, sl], centre=centre)

    step(f"{writer.name}: V-composition patching of {len(down)} components")
    with torch.inference_mode():
        patched = _patched_cache(bridge, tokens, w_full, down, cache, _output_names(down))
    d = _directions(bridge, logits, cache, first_pos)
    comp_rows, fits, scatter = _component_rows(cache, patched, down, writer, w, d, centre, crit)
    erasers = [r.component for r in comp_rows if r.eraser]
    compensators = [r.component for r in comp_rows if _is_compensator(r, crit)]

    step(f"{writer.name}: residual PR with its erasers patched")
    receivers = [c for c in down if c.name in erasers] or down
    with torch.inference_mode():
        res_patched = patched if receivers == down else _patched_cache(bridge, tokens, w_full, receivers, cache, set())
    residual = [ResidualPR(h, lab, _pr(cache[h][:, sl], w, centre), _pr(res_patched[h][:, sl], w, centre))
                for h, lab in residual_points(bridge.cfg, writer)]
    warning = (f"{writer.name}'s output is only {ratio:.1%} of the residual's norm: its PRs are unreliable"
               if ratio < crit.min_norm_ratio else "")
    return WriterAnalysis(writer.name, ratio, [c.name for c in receivers], comp_rows, residual, erasers,
                          compensators, fits, scatter, warning)


def _is_compensator(row: ComponentPR, crit: Criteria) -> bool:
    return row.dla_slope <= crit.max_slope and row.dla_slope < -3 * row.dla_slope_stderr


def clean_run(bridge: Any, tokens: Tensor, writers: list[Component]) -> tuple[Tensor, Any]:
    """One clean forward caching what every writer's analysis reads (outputs, residuals and norm scales downstream)."""
    first = min(w.layer for w in writers)
    later = [c for c in all_components(bridge.cfg) if c.kind in ("head", "mlp") and c.layer >= first]
    names = _output_names(later) | _scale_names(later) | {LN_FINAL_SCALE}
    names |= {h for w in writers for h, _ in residual_points(bridge.cfg, w)}
    with torch.inference_mode():
        return bridge.run_with_cache(tokens, names_filter=lambda n: n in names)


def _patched_cache(bridge: Any, tokens: Tensor, writer_out: Tensor, receivers: list[Component], clean: Any,
                   extra: set[str]) -> Any:
    """A forward with the writer removed from the receivers' inputs, caching residuals and ``extra``."""
    names = extra | {n for n in clean.keys() if "hook_resid" in n}
    hooks = _vcomp_hooks(bridge, writer_out, receivers, clean)
    with bridge.hooks(fwd_hooks=hooks), warnings.catch_warnings():
        # editing ln2.hook_normalized is the point of MLP V-comp patching; the bridge warns that it noticed
        warnings.filterwarnings("ignore", message="A forward hook edited hook_scale/hook_normalized")
        return bridge.run_with_cache(tokens, names_filter=lambda n: n in names)[1]


def _component_rows(cache: Any, patched: Any, down: list[Component], writer: Component, w: Tensor, d: _Directions,
                    centre: bool, crit: Criteria) -> tuple[list[ComponentPR], dict[str, Fit], dict[str, list[float]]]:
    """Per downstream component: PR with/without patching, recovery, DLA slope; then the Figure-4 fits."""
    sl = slice(d.first_pos, None)
    writer_dla = _position_dla(cache, [writer], d)[:, 0]
    down_dla = _position_dla(cache, down, d)
    down_dla_patched = _position_dla(patched, down, d)  # clean scale and directions: frozen, as in DLA
    slope, stderr = batched_slopes(writer_dla, down_dla)
    rows = []
    for i, c in enumerate(down):
        pr, pr_v = _pr(_output(cache, c)[:, sl], w, centre), _pr(_output(patched, c)[:, sl], w, centre)
        recovery = (pr_v.median - pr.median) / -pr.median if pr.median < -0.01 else float("nan")  # undefined near 0
        row = ComponentPR(c.name, pr, pr_v, recovery, float(slope[i]), float(stderr[i]))
        row.eraser = _is_eraser(pr, recovery, crit)
        rows.append(row)
    is_er = torch.tensor([r.eraser for r in rows])
    path = (down_dla - down_dla_patched).sum(-1)
    x_label = f"DLA({writer.name})"
    fits = {"vcomp_path": linear_fit(writer_dla, path, x_label=x_label, y_label="DLA of its V-composition path")}
    scatter = {"writer_dla": writer_dla.tolist(), "vcomp_path": path.tolist()}
    if is_er.any():
        summed = down_dla[:, is_er].sum(-1)
        fits["erasers"] = linear_fit(writer_dla, summed, x_label=x_label, y_label="summed DLA of its erasers")
        scatter["erasers"] = summed.tolist()
    is_comp = torch.tensor([_is_compensator(r, crit) for r in rows])
    if is_comp.any():
        summed = down_dla[:, is_comp].sum(-1)
        fits["compensators"] = linear_fit(writer_dla, summed, x_label=x_label,
                                          y_label="summed DLA of its compensators")
        scatter["compensators"] = summed.tolist()
    return rows, fits, scatter


# ------------------------------------------------------------------------------------------ overrated


def overrated_components(bridge: Any, tokens: Int[Tensor, "batch pos"], resamples: Tensor, *,
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


def rank_targets(bridge: Any, tokens: Int[Tensor, "batch pos"], resamples: Tensor, *, top: int = 16,
                 kinds: tuple[str, ...] = ("head", "mlp"), min_holds: int = 2, thresholds: Any = None) -> pd.DataFrame:
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

    thr = thresholds or Thresholds()
    tokens = check_tokens(bridge, tokens)
    pool = [c for c in all_components(bridge.cfg) if c.kind in kinds and downstream_of(bridge.cfg, c)]
    if not pool:
        raise AdvdlaError(f"no {' or '.join(kinds)} of this model has a later component to read what it writes, so "
                          "DLA cannot overstate any effect: pick a model with at least two layers")
    res = dla(bridge, tokens, components=pool)
    comps = [pool[i] for i in res.values.abs().mean(0).argsort(descending=True)[:top].tolist()]
    values = res.values[:, [res.index(c) for c in comps]]
    te = total_effects(bridge, tokens, resamples, comps, t1=res.t1, t2=res.t2)
    de = direct_effects(bridge, tokens, resamples, comps, t1=res.t1, t2=res.t2).mean
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


def auto_target(bridge: Any, tokens: Int[Tensor, "batch pos"], resamples: Tensor, *, top: int = 16,
                **kwargs: Any) -> Component:
    """The component with the most compensated direct effect: the first row of :func:`rank_targets`."""
    frame = rank_targets(bridge, tokens, resamples, top=top, **kwargs)
    return parse_component(frame["component"].iloc[0], bridge.cfg)


# -------------------------------------------------------------------------------------------------- scan


@dataclass
class EraserPair:
    """A writer -> eraser pair: the eraser's centred PR onto the writer, with and without V-composition patching."""

    writer: str
    eraser: str
    pr: Quartiles
    pr_vcomp: Quartiles
    recovery: float
    source: str = "scan"  # scan (every pair) or writer (an analysed writer's erasers)


def scan_erasers(bridge: Any, tokens: Int[Tensor, "batch pos"], *, first_pos: int = 1,
                 criteria: Criteria | None = None, writers: list[Component] | None = None,
                 step: Note | None = None) -> tuple[list[EraserPair], int]:
    """Writer -> eraser pairs, found without the logit direction (the paper's setting: the writer's signal need not
    reach the logits).

    1. One clean forward; for every head ``w`` before the last layer (or ``writers``) whose centred output is at
       least ``min_norm_ratio`` of the centred residual's, the centred PR of every later head and MLP onto w's
       centred output, per (prompt, position >= first_pos);
    2. pairs whose PR is reliably negative (median <= max_pr and q75 < 0) are candidates;
    3. per writer, one forward with w's output removed from its candidates' value inputs (MLP inputs), norm scales
       frozen: a candidate is an eraser when patching moves at least ``min_recovery`` of its PR back to 0.

    Returns the confirmed pairs (most negative PR first) and how many candidate pairs were tested.
    """
    crit, step = criteria or Criteria(), step or (lambda msg: None)
    tokens = check_tokens(bridge, tokens)
    cfg = bridge.cfg
    writers = writers or [c for c in head_components(cfg) if c.layer < cfg.n_layers - 1]
    later = [c for c in all_components(cfg) if c.kind in ("head", "mlp") and c.layer >= min(w.layer for w in writers)]
    names = _output_names(later) | _scale_names(later) | {_after_writer(w) for w in writers}
    step(f"scan: clean forward over {len(later)} components")
    with torch.inference_mode():
        _, cache = bridge.run_with_cache(tokens, names_filter=lambda n: n in names)
    sl = slice(first_pos, None)
    outs = _centred_outputs(cache, later, sl)
    pairs, tested = [], 0
    for w in writers:
        w_full = _output(cache, w)
        wc = centred(w_full[:, sl])
        if writer_norm_ratio(w_full[:, sl], cache[_after_writer(w)][:, sl]) < crit.min_norm_ratio:
            continue
        down = [c for c in later if is_downstream(c, w)]
        prs = _scan_prs(outs, down, wc)  # [n, len(down)]
        q = torch.quantile(prs.double(), torch.tensor([0.5, 0.25, 0.75], dtype=torch.float64), dim=0)
        cands = [i for i in range(len(down)) if q[0, i] <= crit.max_pr and q[2, i] < 0]
        if not cands:
            continue
        tested += len(cands)
        receivers = [down[i] for i in cands]
        with torch.inference_mode():
            patched = _patched_cache(bridge, tokens, w_full, receivers, cache, _output_names(receivers))
        for i, c in zip(cands, receivers):
            pr, pr_v = Quartiles(*(float(v) for v in q[:, i])), _pr(_output(patched, c)[:, sl], wc, True)
            recovery = (pr_v.median - pr.median) / -pr.median
            if recovery >= crit.min_recovery:
                pairs.append(EraserPair(w.name, c.name, pr, pr_v, recovery))
    step(f"scan: {len(pairs)} erasers confirmed of {tested} reliably negative pairs")
    return sorted(pairs, key=lambda p: p.pr.median), tested


def _centred_outputs(cache: Any, comps: list[Component], sl: slice) -> dict[tuple[str, int], Tensor]:
    """Per layer, the centred outputs of its heads [batch, pos, n_heads, d_model] and its MLP's (``("mlp", l)``)."""
    outs = {}
    for c in comps:
        key = (c.kind, c.layer)
        if key not in outs:
            out = cache[c.output_hook][:, sl]
            outs[key] = out - out.mean((0, 1), keepdim=True)
    return outs


def _scan_prs(outs: dict[tuple[str, int], Tensor], down: list[Component], wc: Tensor) -> Float[Tensor, "n comp"]:
    """Centred PR of each component's output onto the (centred) writer output ``wc``, rows = (prompt, position)."""
    denom = (wc * wc).sum(-1)  # [batch, pos]
    by_layer = {key: (torch.einsum("bphd,bpd->bph", out, wc) if key[0] == "head" else (out * wc).sum(-1)[..., None])
                / denom[..., None] for key, out in outs.items() if any((c.kind, c.layer) == key for c in down)}
    cols = [by_layer[(c.kind, c.layer)][..., c.head if c.kind == "head" else 0] for c in down]
    return torch.stack(cols, -1).reshape(-1, len(down))


def eraser_pairs(analyses: list[WriterAnalysis]) -> list[EraserPair]:
    """The analysed writers' erasers as pairs (source ``writer``)."""
    return [EraserPair(wa.writer, r.component, r.pr, r.pr_vcomp, r.recovery, "writer")
            for wa in analyses for r in wa.components if r.eraser]


# ---------------------------------------------------------------------------------------------- all


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


def analyze(bridge: Any, tokens: Int[Tensor, "batch pos"], resamples: Tensor, *,
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
    del clean
    step(f"overrated components: total effects over {resamples.shape[0]} resamples")
    n_te = min(te_prompts, tokens.shape[0])
    sub = DLAResult(full.components, full.values[:n_te], full.ld[:n_te], full.t1[:n_te], full.t2[:n_te])
    over = overrated_components(bridge, tokens[:n_te], resamples, top=overrated_top, dla_result=sub)
    step(f"auto targets: direct and total effects over {resamples.shape[0]} resamples")
    targets = rank_targets(bridge, tokens[:n_te], resamples, top=overrated_top)
    pairs, scanned = eraser_pairs(analyses), None
    if scan:
        found, tested = scan_erasers(bridge, tokens[:scan_prompts], first_pos=first_pos, criteria=crit, step=step)
        pairs += found
        scanned = {"prompts": min(scan_prompts, tokens.shape[0]), "pairs_tested": tested, "pairs_confirmed": len(found)}
    return Analysis(getattr(getattr(bridge, "advdla_card", None), "name", "?"), tokens.shape[0], tokens.shape[1],
                    resamples.shape[0], seed, centre, first_pos, crit, rows, analyses, over.to_dict("records"),
                    float(full.ld.abs().mean()), n_te, pairs, targets.to_dict("records"), scanned)


def _writer_rows(bridge: Any, ranked: list[WriterRow], chosen: list[Component], clean: tuple[Tensor, Any],
                 tokens: Tensor, first_pos: int, centre: bool, crit: Criteria, *, auto: bool) -> list[WriterRow]:
    """Writer rows with their norm ratios; in auto mode, tiny writers are marked skipped (not analysed)."""
    by_name = {r.component: r for r in ranked}
    rows = []
    for comp in chosen:
        row = by_name.get(comp.name) or _writer_row(bridge, tokens, comp)
        out = _output(clean[1], comp)[:, first_pos:]
        row.norm_ratio = writer_norm_ratio(out, clean[1][_after_writer(comp)][:, first_pos:], centre=centre)
        if auto and row.abs_share < crit.min_share:
            row.skipped = f"|DLA| share {row.abs_share:.1%} of |LD| (< {crit.min_share:.0%})"
        elif auto and row.norm_ratio < crit.min_norm_ratio:
            row.skipped = f"output {row.norm_ratio:.1%} of the residual's norm (< {crit.min_norm_ratio:.0%})"
        rows.append(row)
    return rows


def _writer_row(bridge: Any, tokens: Tensor, comp: Component) -> WriterRow:
    res = dla(bridge, tokens, components=[comp])
    mean_ld = res.ld.abs().mean().clamp(min=1e-6)
    mean_dla, abs_dla = res.values[:, 0].mean(), res.values[:, 0].abs().mean()
    return WriterRow(comp.name, float(mean_dla), float(mean_dla / mean_ld), float(abs_dla), float(abs_dla / mean_ld))
