"""Search yield: verified adversarial examples per 100 candidates, TPE vs random search vs unmanipulated text.

Equal candidate budgets per arm, several seeds, one shared target (auto), every fast hit re-verified on the slow
path (:func:`advdla.search.yields.measure_yield`). Goals with the default ``compensation`` objective on the default
model: TPE at least 5x random and 10x natural text. Long on SmolLM2 (about an hour on 2 busy cores): size it with
``ADVDLA_YIELD_TRIALS`` (default 96), ``ADVDLA_YIELD_SEEDS`` (default 0,1,2) and ``ADVDLA_YIELD_OBJECTIVES``
(default compensation); ``advdla search --yield`` runs the same measurement from the command line.
"""

from __future__ import annotations

import math
import os

from benchmarks.conftest import add_ratio

GROUP = "search yield"


def test_yield_tpe_vs_random_vs_natural(benchmark, bench_model, tmp_path):
    from advdla.search import SearchConfig
    from advdla.search.yields import measure_yield, summarise

    trials = int(os.environ.get("ADVDLA_YIELD_TRIALS", "96"))
    seeds = [int(s) for s in os.environ.get("ADVDLA_YIELD_SEEDS", "0,1,2").split(",")]
    objectives = os.environ.get("ADVDLA_YIELD_OBJECTIVES", "compensation").split(",")
    config = SearchConfig(target="auto", trials=trials, seq_len=min(24, bench_model.cfg.n_ctx // 2))
    frame = benchmark.pedantic(lambda: measure_yield(bench_model, config, seeds=seeds, objectives=objectives,
                                                     out_dir=tmp_path), rounds=1, iterations=1)
    for row in summarise(frame):
        add_ratio(GROUP, f"{row['objective']} {row['arm']}: verified per 100 [{row['ci_low']:.1f}, "
                  f"{row['ci_high']:.1f}]", row["per_100"], "info", True)
        if row["arm"] == "tpe":
            for base, goal in (("random", 5.0), ("natural", 10.0)):
                x = row.get(f"x_{base}", math.nan)
                add_ratio(GROUP, f"{row['objective']} TPE / {base} (x per 100 candidates)", x, f">= {goal:g}",
                          x >= goal)
