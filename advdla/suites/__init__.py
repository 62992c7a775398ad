"""Benchmark suites: config, ground truth, build, storage, verification, fingerprints.

The flow: a YAML config (:mod:`~advdla.suites.config`) -> :func:`build_suite` (:mod:`~advdla.suites.build`:
search, natural controls from :mod:`~advdla.suites.natural`, per-example ground truth from
:mod:`~advdla.suites.truth`, the manifest and README from :mod:`~advdla.suites.manifest`) -> a folder of Parquet +
manifest (:mod:`~advdla.suites.store`, whose :class:`Example` is the one definition of a suite row) ->
:func:`verify_suite` (:mod:`~advdla.suites.verify`), all chained by fingerprints
(:mod:`~advdla.suites.fingerprint`). Add a suite column: a field of :class:`~advdla.suites.truth.Truth`
(per panel component) or of :class:`Example` (per example), then its Parquet type in ``store._features``.
"""

from advdla.suites.build import build_suite, regenerate_test
from advdla.suites.config import PanelPolicy, SuiteConfig, config_from_dict, load_config
from advdla.suites.sources import document_cluster, source_files_of
from advdla.suites.store import (
    KINDS,
    SPLITS,
    Example,
    Suite,
    check_destination,
    example_id,
    load_suite,
    read_manifest,
    save_suite,
    suite_info,
)
from advdla.suites.truth import Truth, choose_panel, ground_truth
from advdla.suites.verify import verify_suite

__all__ = [
    "document_cluster",
    "source_files_of",
    "build_suite",
    "regenerate_test",
    "PanelPolicy",
    "SuiteConfig",
    "config_from_dict",
    "load_config",
    "KINDS",
    "SPLITS",
    "Example",
    "Suite",
    "check_destination",
    "example_id",
    "load_suite",
    "read_manifest",
    "save_suite",
    "suite_info",
    "Truth",
    "choose_panel",
    "ground_truth",
    "verify_suite",
]
