"""The notebook API: the README's example runs as written, and ``advdla.api.score`` gives the numbers the command
line's harness gives for the same method on the same examples."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import pytest

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]


def readme_block(marker: str) -> str:
    """The fenced block that follows the HTML comment holding ``marker`` in the README (as in test_quickstart)."""
    found = re.search(rf"<!-- {re.escape(marker)}[^>]*-->\s*```\w*\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert found, f"no block after a <!-- {marker} --> marker in README.md"
    return found.group(1)


@pytest.fixture(scope="module")
def example():
    matplotlib.use("Agg")
    namespace: dict = {}
    exec(compile(readme_block("api example"), "README.md (api example)", "exec"), namespace)  # noqa: S102
    return namespace


def test_the_readme_example_runs_and_half_dla_ranks_as_dla(example):
    frame = example["frame"]
    assert list(frame.columns) == ["method", "split", "kind", "metric", "against", "value", "lo", "hi", "n", "chance"]
    te = frame[frame["against"] == "te"]
    spearman = te[te["metric"] == "rank_full"].set_index(["method", "kind"])["value"]
    assert spearman["half_dla"].to_dict() == pytest.approx(spearman["dla"].to_dict(), abs=1e-12)  # same order
    mcc = te[te["metric"] == "mcc"].set_index(["method", "kind"])["value"]
    assert mcc["atp", "adversarial"] > mcc["dla", "adversarial"] + 0.1
    assert set(frame[frame["method"] == "dla"]["against"]) == {"te", "de"}  # a direct-effect method: both
    assert set(frame[frame["method"] == "half_dla"]["against"]) == {"te"}  # a bare function: the TE only
    assert example["ax"].get_ylabel().startswith("mcc")


def test_api_scores_equal_the_harness(example, planted):
    import advdla.api as ad
    from advdla.scoring.harness import run_methods
    from advdla.suites import source_files_of

    suite = example["suite"]
    chosen = ad.examples(suite, "dev", limit=8)
    frame = ad.score("atp", suite, model=planted, split="dev", limit=8)
    clusters = source_files_of(suite.manifest, chosen)[0]  # both resample source files
    reference, _ = run_methods(planted, ["atp"], chosen, k=3, seed=0, clusters=clusters)
    merged = frame.merge(reference, on=["method", "split", "kind", "metric", "against"], suffixes=("", "_cli"))
    assert len(merged) == len(reference) > 0
    for column in ("value", "lo", "hi"):
        assert merged[column].to_numpy() == pytest.approx(merged[f"{column}_cli"].to_numpy(), abs=1e-9, nan_ok=True)


def test_a_function_with_the_wrong_shape_is_one_line(example, planted):
    import advdla.api as ad
    from advdla.errors import AdvdlaError

    with pytest.raises(AdvdlaError, match="returned shape"):
        ad.score(lambda model, batch: batch.tokens.float(), example["suite"], model=planted, limit=2)
