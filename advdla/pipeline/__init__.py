"""The main job, ``advdla run``: every stage of advdla once, small enough to finish in minutes on a laptop CPU.

Context: each stage is a plain call into its own module; this package only sizes them and wires their outputs
into the next stage's inputs, in one output folder::

    model       load_model(name)                          fetched/converted into $ADVDLA_HOME on first use
    analysis    analysis.analyze on a corpus sample       OUT/analysis.json   writers, erasers, the auto target
    search      search.run_search on the auto target      OUT/search/         adversarial examples (parquet)
    suite       suites.build_suite from a small config    OUT/suites/NAME/    dev/test splits, manifest
                (+ the shipped suite's dev and test examples)
    scores      every built-in method + the ceiling, dev+test OUT/results/scores.json  a record per method, split
    leaderboard leaderboard.add_record + render           OUT/leaderboard/    records and LEADERBOARD.md

Intuition: the defaults are the smallest sizes at which the result still says something (a handful of
adversarial and natural examples, R = 2 resamples, a few hundred search trials); ``--quick`` shrinks them
further. The suites worth publishing are built from a config with ``advdla suite build``; ``run`` shows the
whole path and where each piece lands.

A verdict needs more examples than minutes of search find, so where the project ships a suite for the model
(``suites/*/``, :func:`advdla.suites.imported.choose_shipped`) the run adds that suite's dev and test examples to
its own (their truth took hours) and takes its resample counts; every row's panel is then the late one: each head and
MLP from ``late_layers`` layers before the earliest target on (:class:`advdla.suites.PanelPolicy` ``min_layer``),
where compensation happens and patching is cheap. The output says how many rows come from where.

Modules: :mod:`~advdla.pipeline.plan` (every size, the shipped suite, decided before anything runs),
:mod:`~advdla.pipeline.stages` (one function per stage, and what a finished stage's outputs are read back as),
:mod:`~advdla.pipeline.resume` (what must match for a folder's run to be resumed, and which stages it finished),
:mod:`~advdla.pipeline.runner` (:func:`run_pipeline`).
"""

from advdla.pipeline.plan import STAGES, SUITES_DIR, RunPlan, fitting_seq_len, plan_run, suite_name
from advdla.pipeline.resume import check_out, finished_stages
from advdla.pipeline.runner import run_pipeline
from advdla.pipeline.stages import RunOutputs, RunState, rows_by_source

__all__ = ["RunPlan", "RunState", "RunOutputs", "plan_run", "run_pipeline", "check_out", "finished_stages",
           "fitting_seq_len", "rows_by_source", "suite_name", "STAGES", "SUITES_DIR"]
