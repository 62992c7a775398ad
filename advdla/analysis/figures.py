"""The paper's Figures 1-4 as PNGs, drawn from an :class:`~advdla.analysis.run.Analysis` (matplotlib, Agg backend).

1. ``fig1_residual_pr_<writer>.png``: PR(residual stream, writer) at every hook point, median with the
   quartile band shaded, without and with V-composition patching (the paper's Figure 1).
2. ``fig2_component_pr_<writer>.png``: PR(component output, writer) for the downstream components with the
   most negative medians, bars with quartile error bars, without and with patching (Figure 2).
3. ``fig3_dla_vs_te.png``: DLA against total effect for the components ranked by overstatement (Figure 3's
   point: DLA high, effect low).
4. ``fig4_writer_vs_erasers_<writer>.png``: the writer's DLA against the DLA of its V-composition path (what
   downstream components lose when the writer is removed from their inputs; the paper's Figure 4), and against
   its erasers' (else its logit-direction compensators') summed DLA, each with its linear fit.

Every file is written to a temporary name and renamed, so an interrupted run leaves no half-written PNG. Every axis
is labelled; the hook names are explained on Figure 1's x-axis (``pre3``: the residual stream before block 3,
``mid3``: after its attention, ``post3``: after its MLP); medians are drawn as points with their quartile range, so
a value of 0 (a PR that V-composition patching removed) is still visible; titles are wrapped to the figure's width.

matplotlib (about half a second to import) is imported here at the top, and :mod:`advdla.analysis` does not import
this module: only ``advdla analyze --plot-dir`` pays for it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from advdla.analysis.run import Analysis
from advdla.analysis.writers import WriterAnalysis
from advdla.atomic import write_atomic

__all__ = ["write_figures", "HOOK_NAMES"]

HOOK_NAMES = "pre L: residual before block L, mid L: after its attention, post L: after its MLP"
FIT_LABELS = {"vcomp_path": "its V-composition path", "erasers": "its erasers' summed DLA",
              "compensators": "its compensators' summed DLA"}


def _title(ax: Any, text: str, *, fontsize: float = 10) -> None:
    """A title wrapped to the axes' width (about 11 characters per inch at 10 pt), so it never runs off the figure."""
    inches = ax.figure.get_figwidth() * ax.get_position().width
    ax.set_title("\n".join(textwrap.wrap(text, max(20, int(inches * 11 * 10 / fontsize)))), fontsize=fontsize)


def write_figures(analysis: Analysis, out_dir: str | Path, *, top_components: int = 12) -> list[Path]:
    """Write every figure for ``analysis`` into ``out_dir`` (created if missing); return the paths written."""
    matplotlib.use("Agg")  # files only, never a window: works with no display
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for wa in analysis.analyses:
        paths.append(_save(_residual_figure(wa, analysis.model), out / f"fig1_residual_pr_{wa.writer}.png"))
        paths.append(_save(_component_figure(wa, analysis.model, top_components),
                           out / f"fig2_component_pr_{wa.writer}.png"))
        paths.append(_save(_fit_figure(wa, analysis.model), out / f"fig4_writer_vs_erasers_{wa.writer}.png"))
    if analysis.overrated:
        paths.append(_save(_dla_te_figure(analysis), out / "fig3_dla_vs_te.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png"))
    finally:
        plt.close(fig)


def _residual_figure(wa: WriterAnalysis, model: str) -> Any:
    fig, ax = plt.subplots(figsize=(max(6.0, 0.22 * len(wa.residual) + 2), 4))
    x = list(range(len(wa.residual)))
    lines = (("pr", "clean", "tab:blue"), ("pr_vcomp", f"V-comp patched ({_receivers(wa)})", "tab:orange"))
    for key, label, color in lines:
        q = [getattr(r, key) for r in wa.residual]
        ax.plot(x, [v.median for v in q], marker="o", ms=3, color=color, label=f"{label}: median")
        ax.fill_between(x, [v.q25 for v in q], [v.q75 for v in q], color=color, alpha=0.3, lw=0.8,
                        edgecolor=color, label=f"{label}: quartiles")
    step = max(1, len(x) // 30)
    ax.set_xticks(x[::step], [r.label for r in wa.residual][::step], rotation=90, fontsize=7)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel(f"hook point ({HOOK_NAMES})", fontsize=8)
    ax.set_ylabel(f"PR(residual, {wa.writer})")
    _title(ax, f"{model}: how much of {wa.writer}'s output the residual stream holds")
    ax.legend(fontsize=7)
    return fig


def _receivers(wa: WriterAnalysis) -> str:
    names = wa.receivers
    return ", ".join(names) if len(names) <= 4 else f"all {len(names)} downstream components"


def _component_figure(wa: WriterAnalysis, model: str, top: int) -> Any:
    rows = sorted(wa.components, key=lambda r: r.pr.median)[:top]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(rows) + 2), 4))
    x = np.arange(len(rows))
    series = ((-0.15, "pr", "clean", "tab:blue", "o"),
              (0.15, "pr_vcomp", f"{wa.writer} removed from the input (V-composition patched)", "tab:orange", "s"))
    for off, key, label, color, marker in series:
        q = [getattr(r, key) for r in rows]
        med = np.array([v.median for v in q])
        err = np.array([[m - v.q25 for m, v in zip(med, q)], [v.q75 - m for m, v in zip(med, q)]]).clip(min=0)
        ax.errorbar(x + off, med, yerr=err, fmt=marker, ms=5, capsize=3, color=color, label=label)
    ax.set_xticks(x, [r.component + (" *" if r.eraser else "") for r in rows], rotation=45, fontsize=8)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("downstream component (* = eraser)")
    ax.set_ylabel(f"PR(output, {wa.writer}): median, quartiles")
    _title(ax, f"{model}: the downstream components most opposed to {wa.writer}")
    ax.legend(fontsize=7)
    return fig


def _fit_figure(wa: WriterAnalysis, model: str) -> Any:
    """One panel per fit: the V-composition path (causal), then the erasers' (or compensators') summed DLA."""
    keys = ["vcomp_path"] + [k for k in ("erasers", "compensators") if k in wa.fits][:1]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4.5), squeeze=False)
    x = np.array(wa.scatter["writer_dla"])
    for ax, key in zip(axes[0], keys):
        fit, y = wa.fits[key], np.array(wa.scatter[key])
        ax.scatter(x, y, s=6, alpha=0.4)
        xs = np.linspace(x.min(), x.max(), 2)
        ax.plot(xs, fit.slope * xs + fit.intercept, color="tab:red",
                label=f"slope {fit.slope:.3f} ± {fit.slope_stderr:.3f}, r = {fit.r:.2f}")
        ax.set_xlabel(fit.x_label)
        ax.set_ylabel(fit.y_label)
        _title(ax, f"{model}: {wa.writer}'s DLA vs {FIT_LABELS.get(key, key)} (n = {fit.n})")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _dla_te_figure(analysis: Analysis) -> Any:
    rows = analysis.overrated
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(rows) + 2), 4))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["dla"] for r in rows], width=0.4, label="DLA")
    ax.bar(x + 0.2, [r["te"] for r in rows], width=0.4, yerr=[r["te_std"] for r in rows], capsize=2,
           label="total effect (TE)")
    ax.set_xticks(x, [r["component"] for r in rows], rotation=45, fontsize=8)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("component (largest DLA - TE first)")
    ax.set_ylabel("effect on the logit difference")
    _title(ax, f"{analysis.model}: DLA vs total effect, most overrated first ({analysis.te_prompts} prompts, "
               f"{analysis.resamples} resamples)")
    ax.legend(fontsize=8)
    return fig
