"""The adversarial search: prompts on which a target component's DLA overstates its causal effect.

- :mod:`advdla.search.space`: fixed-length context manipulations and k free token slots over small
  candidate pools built from the model (gradients, the target's OV circuit, what erasure suspects attend to);
- :mod:`advdla.search.evaluate`: batched scoring of candidates (DLA, rank, LD, TE over fixed resamples);
- :mod:`advdla.search.objectives`: the objectives as a registry (:data:`OBJECTIVES`), the scalar objective and
  the multi-objective vector (what counts as adversarial is :mod:`advdla.criteria`'s);
- :mod:`advdla.search.samplers`: the samplers as a registry (:data:`SAMPLERS`: tpe, nsga2, random);
- :mod:`advdla.search.config`: :class:`SearchConfig` and its checks; :mod:`advdla.search.target`: the target;
- :mod:`advdla.search.storage`: Optuna storages (RDB, SQLite, journal) and the study with its space key;
- :mod:`advdla.search.loop`: batched ask/tell on an in-memory mirror of the stored study, several workers;
- :mod:`advdla.search.local`: the local search (unedited contexts, mutations of the best trials);
- :mod:`advdla.search.verified`: the slow-path re-verification and the output files;
- :mod:`advdla.search.engine`: :func:`run_search`, which wires them together;
- :mod:`advdla.search.yields`: verified examples per 100 candidates, search vs random vs natural text.

Entry point: :func:`run_search` (``advdla search`` on the command line); :func:`verified_examples` keeps the
rows of its examples frame that passed the slow re-verification.
"""

from advdla.search.config import SearchConfig, SearchResult, check_lengths, validate
from advdla.search.engine import corpus_baseline, run_search, search_resamples, space_for
from advdla.search.evaluate import Evaluator, Scores, verify
from advdla.search.objectives import OBJECTIVES, Objective, check_objective, is_hit, multi_objectives, scalar_objective
from advdla.search.samplers import SAMPLERS, SamplerSpec
from advdla.search.storage import open_storage, open_study, with_driver
from advdla.search.target import resolve_target
from advdla.search.verified import read_search, verified_examples, verify_resamples

__all__ = ["SAMPLERS", "SamplerSpec", "SearchConfig", "SearchResult", "run_search", "resolve_target",
           "corpus_baseline", "read_search", "verified_examples", "verify_resamples", "search_resamples", "space_for",
           "validate", "check_lengths", "open_storage", "open_study", "with_driver", "Evaluator", "Scores", "verify",
           "is_hit", "OBJECTIVES", "Objective", "check_objective", "multi_objectives", "scalar_objective"]
