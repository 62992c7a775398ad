"""The small numbers of the erasure analysis: projection ratios, quartiles over batch x position, line fits.

Context: the paper (Janiak et al., GELU-4L) measures erasure with the projection ratio

    PR(a, b) = a . b / |b|^2        (PR = -1: a cancels b exactly; PR = 1: a repeats b)

of one output (or the residual stream) onto a writer's output, per (prompt, position), and reports it as a median
with 25th/75th percentiles over batch x position. Its Figure 4 is a line fit of one DLA on another.

Intuition: PR is the coefficient of ``a`` along ``b``. It is scale-free in ``a`` but divides by ``|b|^2``, so a tiny
``b`` with a constant part (aligned with every big constant direction of the residual) gives huge PRs for
everything: :func:`centred` removes the constant part first (the first of the "two traps", see
:mod:`advdla.analysis.writers`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["Quartiles", "quartiles", "projection_ratio", "centred", "Fit", "linear_fit", "batched_slopes"]


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


def projection_ratio(a: Float[Tensor, "... d_model"], b: Float[Tensor, "... d_model"]) -> Float[Tensor, "..."]:
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
    # lazy: scipy.stats takes about a second to import even after torch, and of this package's users (search,
    # suites, scoring all import it) only the analysis' fits need it
    from scipy.stats import linregress

    x, y = x.flatten().double().numpy(), y.flatten().double().numpy()
    if len(x) < 3 or float(x.std()) == 0.0:
        return Fit(*(float("nan"),) * 5, len(x), x_label, y_label)
    res = linregress(x, y)
    return Fit(float(res.slope), float(res.stderr), float(res.intercept), float(res.intercept_stderr),
               float(res.rvalue), len(x), x_label, y_label)


def batched_slopes(x: Float[Tensor, " n"], ys: Float[Tensor, "n comp"]
                   ) -> tuple[Float[Tensor, " comp"], Float[Tensor, " comp"]]:
    """Least-squares slope of every column of ``ys`` on ``x``, and its standard error (vectorised linregress)."""
    x, ys = x.double(), ys.double()
    n = x.shape[0]
    xc, yc = x - x.mean(), ys - ys.mean(0)
    sxx = (xc * xc).sum()
    slope = (xc[:, None] * yc).sum(0) / sxx
    resid = yc - slope[None] * xc[:, None]
    stderr = ((resid * resid).sum(0) / max(n - 2, 1) / sxx).sqrt()
    return slope.float(), stderr.float()
