"""Scoring attribution methods against a suite's causal ground truth.

``metrics`` (the metric registry, per-example metrics against TE and DE with their chance values, aggregation
per group), ``reference`` (each metric's slow loop reference), ``stats`` (seeded cluster-bootstrap
intervals: of a mean, of a paired difference between methods, of a difference between groups), ``harness``
(suite -> batches -> method runs -> scored frame -> records), ``records`` (the self-describing JSON result record),
``checkpoint`` (per-batch checkpoints a killed run resumes from), ``chance`` (is an uninformed method at chance? a
sign-flip test per cell, Holm over the cells). Add a metric with :func:`register_metric` in
:mod:`advdla.scoring.metrics`.
"""

from advdla.scoring.harness import (
                                    MethodRun,
                                    batches,
                                    check_estimates,
                                    open_suite,
                                    run_method,
                                    run_methods,
                                    score_suite,
                                    split_examples,
                                    to_batch,
)
from advdla.scoring.metrics import (
                                    AGAINST,
                                    FRAME_COLUMNS,
                                    METRICS,
                                    Context,
                                    MetricSpec,
                                    aggregate,
                                    cluster_of,
                                    example_chance,
                                    example_context,
                                    example_metrics,
                                    per_example_frame,
                                    primary_metric,
                                    register_metric,
                                    score_estimates,
)
from advdla.scoring.records import (
                                    SCHEMA_VERSION,
                                    ResultRecord,
                                    environment,
                                    git_commit,
                                    make_record,
                                    read_records,
                                    write_records,
)
from advdla.scoring.stats import bootstrap_ci, group_difference, group_difference_reference, paired_interval

__all__ = ["MethodRun", "batches", "check_estimates", "open_suite", "run_method", "run_methods", "score_suite",
           "split_examples", "to_batch", "AGAINST", "FRAME_COLUMNS", "METRICS", "Context", "MetricSpec", "aggregate",
           "bootstrap_ci", "example_chance", "example_context", "example_metrics", "per_example_frame",
           "primary_metric", "paired_interval", "group_difference", "group_difference_reference", "cluster_of",
           "register_metric", "score_estimates", "SCHEMA_VERSION", "ResultRecord", "environment", "git_commit",
           "make_record", "read_records", "write_records"]
