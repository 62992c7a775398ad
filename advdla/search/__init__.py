"""The adversarial search: prompts on which a target component's DLA overstates its causal effect.

- :mod:`advdla.search.space`: fixed-length context manipulations and k free token slots over small
  candidate pools built from the model (gradients, the target's OV circuit, what erasure suspects attend to);
- :mod:`advdla.search.evaluate`: batched scoring of candidates (DLA, rank, LD, TE over fixed resamples);
- :mod:`advdla.search.objectives`: the scalar objective and the multi-objective vector (what counts as
  adversarial is :mod:`advdla.criteria`'s);
- :mod:`advdla.search.engine`: the Optuna study with batched ask/tell, storage, resume and several workers.

Entry point: :func:`run_search` (``advdla search`` on the command line); :func:`verified_examples` keeps the
rows of its examples frame that passed the slow re-verification.
"""

from advdla.search.engine import (
                                  SAMPLERS,
                                  SearchConfig,
                                  SearchResult,
                                  corpus_baseline,
                                  read_search,
                                  resolve_target,
                                  run_search,
                                  verified_examples,
)
from advdla.search.evaluate import Evaluator, Scores, verify
from advdla.search.objectives import OBJECTIVES, is_hit, multi_objectives, scalar_objective

__all__ = ["SAMPLERS", "SearchConfig", "SearchResult", "run_search", "resolve_target", "corpus_baseline", "read_search",
           "verified_examples", "Evaluator", "Scores", "verify", "is_hit", "OBJECTIVES", "multi_objectives",
           "scalar_objective"]
