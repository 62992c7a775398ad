"""The erasure analysis: writers, erasers, projection ratios, V-composition patching, the paper's figures as numbers,
and the auto target.

Context: DLA credits a component (the *writer*) with everything its output does to the logits directly. If a
later component (an *eraser*) reads that output and writes its negative, the writer keeps its DLA while its
causal effect is small: DLA lies. The paper (Janiak et al., GELU-4L) measured this with projection ratios onto the
writer's output and proved the reading with V-composition patching. One concept per module:

- :mod:`~advdla.analysis.stats`: projection ratio, centring, quartiles over batch x position, line fits;
- :mod:`~advdla.analysis.activations`: the clean and V-composition patched forwards, DLA per position;
- :mod:`~advdla.analysis.writers`: writer discovery and the per-writer analysis (erasers, compensators, Figure 4),
  with the two traps (tiny constant writers, position 0) it avoids;
- :mod:`~advdla.analysis.scan`: writer -> eraser pairs found without the logit direction;
- :mod:`~advdla.analysis.targets`: the components DLA overrates and the ``auto`` target (compensated direct effect),
  the one ranking behind the search's ``--target auto``, a suite's ``targets: auto`` and ``advdla run``;
- :mod:`~advdla.analysis.run`: ``advdla analyze`` as one call (:func:`analyze`) on a corpus sample;
- :mod:`~advdla.analysis.figures`: the paper's Figures 1-4 as PNGs. Not imported here: it imports matplotlib, which
  only plotting needs (``from advdla.analysis.figures import write_figures``).
"""

from advdla.analysis.activations import clean_run, downstream_of, residual_points
from advdla.analysis.run import Analysis, analyze, sample_prompts
from advdla.analysis.scan import EraserPair, eraser_pairs, scan_erasers
from advdla.analysis.stats import Fit, Quartiles, batched_slopes, centred, linear_fit, projection_ratio, quartiles
from advdla.analysis.targets import (
    auto_target,
    auto_target_from_windows,
    overrated_components,
    rank_targets,
    rank_targets_from_windows,
    target_windows,
)
from advdla.analysis.writers import (
    ComponentPR,
    Criteria,
    ResidualPR,
    WriterAnalysis,
    WriterRow,
    analyze_writer,
    check_writer,
    discover_writers,
    writer_norm_ratio,
)

__all__ = ["Quartiles", "WriterRow", "ComponentPR", "ResidualPR", "Fit", "WriterAnalysis", "Analysis", "Criteria",
           "projection_ratio", "centred", "quartiles", "batched_slopes", "linear_fit", "sample_prompts",
           "check_writer", "discover_writers", "writer_norm_ratio", "analyze_writer", "clean_run", "downstream_of",
           "residual_points", "analyze", "overrated_components", "rank_targets", "auto_target", "target_windows",
           "rank_targets_from_windows", "auto_target_from_windows", "EraserPair", "scan_erasers", "eraser_pairs"]
