"""Suites: fingerprint chain, config validation, build determinism, storage, verify, regenerate-test, safety.

Most builds here use a stub candidate finder (corpus windows: on the planted model the writer L0H1 is
adversarial on nearly any text) so they take seconds; one test builds with the real search twice.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from advdla.errors import AdvdlaError
from advdla.suites import (
    Example,
    build_suite,
    config_from_dict,
    load_config,
    load_suite,
    regenerate_test,
    save_suite,
    verify_suite,
)
from advdla.suites.build import Candidate
from advdla.suites.fingerprint import Chain, canonical_json, hash_rows, next_fingerprint
from advdla.suites.store import rows_fingerprint_args

SHIPPED = Path(__file__).resolve().parents[2] / "suites"


def corpus_finder(bridge, target, *, cfg, seed, n, windows, out_dir, exclude_docs=frozenset(), progress=None):
    """Stub search: n corpus windows (each from its own document, none of the documents excluded)."""
    tokens, docs = windows.sample(cfg.seq_len, n, seed=seed + 99, exclude=set(exclude_docs))
    return [Candidate(tuple(t.tolist()), target.name, d) for t, d in zip(tokens, docs)], {"engine": "stub"}


def small_config(**changes):
    base = dict(
        name="planted-small",
        model="planted-erasure",
        seq_len=12,
        seed=0,
        targets=["L0H1"],
        search=dict(trials=4, batch=8),
        resamples=2,
        method_resamples=2,
        splits=dict(n_dev=3, n_test=2, n_natural=1),
    )
    base.update(changes)
    return config_from_dict(base)


@pytest.fixture(scope="module")
def built(planted, tmp_path_factory):
    """One stub-built suite shared by the read-only tests of this module."""
    return build_suite(small_config(), tmp_path_factory.mktemp("suites") / "s", find=corpus_finder, bridge=planted)


# --------------------------------------------------------------------------------------------- fingerprints


def test_chain_is_the_hf_rule_and_replay_catches_edits():
    chain = Chain().add("weights", {"sha256": "ab"}).add("config", {"seed": 0, "x": [1.5, 2]})
    assert chain.links[0]["fingerprint"] == next_fingerprint("0" * 64, "weights", {"sha256": "ab"})
    assert Chain.replay(chain.to_list()).fingerprint == chain.fingerprint
    links = chain.to_list()
    links[0]["args"] = {"sha256": "ac"}
    with pytest.raises(AdvdlaError, match="broken at step 0"):
        Chain.replay(links)


def test_canonical_json_is_order_free_and_refuses_nan():
    assert canonical_json({"b": 1, "a": (1, 2)}) == canonical_json({"a": [1, 2], "b": 1})
    assert hash_rows([{"a": 1}, {"a": 2}]) != hash_rows([{"a": 2}, {"a": 1}])
    with pytest.raises(AdvdlaError, match="non-finite"):
        canonical_json({"x": math.nan})


# --------------------------------------------------------------------------------------------- config


def test_shipped_configs_load():
    for file in sorted(SHIPPED.glob("*.yaml")):
        cfg = load_config(file)
        assert cfg.name == file.stem


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"seed_value": 1}, "unknown key 'seed_value'; allowed keys: name, version"),
        ({"resamples": 1}, "resamples must be an integer >= 2"),  # a spread needs two
        ({"method_resamples": 0}, "method_resamples must be an integer >= 1"),
        ({"search": {"objective": "compensate"}}, "Did you mean 'compensation'"),
        ({"splits": {"n_dev": 0}}, "splits.n_dev must be an integer >= 1"),
        ({"splits": {"n_devs": 2}}, "splits: unknown key 'n_devs'"),
        ({"search": {"sampler": "tpee"}}, "Did you mean 'tpe'"),
        ({"thresholds": {"min_dla_share": 0.05, "max_te_share": 0.1}}, "impossible thresholds"),
        ({"thresholds": {"top": 3}}, "thresholds: unknown key 'top'"),
        ({"targets": "L0H1"}, "targets must be 'auto' or a non-empty list"),
        ({"version": "1"}, "version must be an integer"),
        ({"name": "../x"}, "name '../x' must use only"),
    ],
)
def test_bad_config_is_one_clear_line(changes, message):
    with pytest.raises(AdvdlaError, match=message.replace("(", r"\(").replace(".", r"\.")) as info:
        small_config(**changes)
    assert "\n" not in str(info.value)


def test_config_file_errors(tmp_path):
    with pytest.raises(AdvdlaError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(AdvdlaError, match="expected a mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "nameless.yaml").write_text("model: planted-erasure\n")
    with pytest.raises(AdvdlaError, match="missing required key"):
        load_config(tmp_path / "nameless.yaml")


# --------------------------------------------------------------------------------------------- build and storage


def test_same_config_same_fingerprints(planted, built, tmp_path):
    again = build_suite(small_config(), tmp_path / "again", find=corpus_finder, bridge=planted)
    a, b = load_suite(built).manifest, load_suite(again).manifest
    assert a["fingerprints"] == b["fingerprints"] and a["fingerprint"] == b["fingerprint"]
    other = build_suite(small_config(seed=1), tmp_path / "other", find=corpus_finder, bridge=planted)
    other_links = load_suite(other).manifest["fingerprints"]
    assert [l["fingerprint"] for l in other_links[:3]] == [
        l["fingerprint"] for l in a["fingerprints"][:3]
    ]  # model, corpus
    assert other_links[-1]["fingerprint"] != a["fingerprint"]


def test_readable_without_advdla_and_shaped_as_promised(built):
    import datasets

    ds = datasets.load_dataset("parquet", data_files={s: str(built / f"data/{s}.parquet") for s in ("dev", "test")})
    assert ds["dev"].num_rows == 3 + 1 and ds["test"].num_rows == 2 + 1
    suite = load_suite(built)
    dev, test = suite.rows(split="dev"), suite.rows(split="test")
    assert not {r["example_id"] for r in dev} & {r["example_id"] for r in test}
    assert [r["kind"] for r in dev] == ["adversarial"] * 3 + ["natural"]
    panel = [c for l in range(3) for c in [f"L{l}H{h}" for h in range(4)] + [f"MLP{l}"]]
    for r in dev + test:
        assert len(r["resamples"]) == 2 and all(len(x) == len(r["tokens"]) == 12 for x in r["resamples"])
        assert len(r["method_resamples"]) == 2 and all(len(x) == 12 for x in r["method_resamples"])
        assert not {tuple(x) for x in r["resamples"]} & {tuple(x) for x in r["method_resamples"]}
        assert r["panel"] == panel  # 12 heads + 3 MLPs <= 512: all of them
        assert r["ie_mean"] == pytest.approx([t - d for t, d in zip(r["te_mean"], r["de_mean"])], abs=1e-9)
        assert r["mechanism"] in (("compensation", "baseline", "mixed") if r["kind"] == "adversarial" else ("none",))
    manifest = suite.manifest
    assert manifest["splits"] == {"dev": {"adversarial": 3, "natural": 1}, "test": {"adversarial": 2, "natural": 1}}
    assert manifest["thresholds"]["max_te_share"] == 0.1 and manifest["version"] == 1
    assert [l["step"] for l in manifest["fingerprints"]] == ["weights", "tokenizer", "corpus", "config", "examples"]
    assert "- v1 (" in (built / "README.md").read_text()


def test_planted_writer_truth_lies_for_dla(built):
    """The stored truth says what the planted model is built to do: the writer's DLA is large, its TE ~ 0."""
    for r in load_suite(built).rows(kind="adversarial"):
        i = r["panel"].index("L0H1")
        assert r["dla"][i] > 0.5 * r["ld"] > 0
        assert abs(r["te_mean"][i]) < 0.05 * r["ld"]


def test_resamples_avoid_the_example_document(built):
    suite = load_suite(built)
    for r in suite.rows(kind="natural"):
        assert all(res != r["tokens"] for res in r["resamples"]) and r["source_doc"] >= 0


def test_existing_suite_is_never_overwritten_silently(planted, built, tmp_path):
    before = (built / "manifest.json").read_bytes()
    with pytest.raises(AdvdlaError, match="already exists: pass --force"):
        build_suite(small_config(), built, find=corpus_finder, bridge=planted)
    assert (built / "manifest.json").read_bytes() == before
    dest = tmp_path / "s"
    build_suite(small_config(), dest, find=corpus_finder, bridge=planted)
    build_suite(small_config(version=2), dest, force=True, find=corpus_finder, bridge=planted)
    aside = list(tmp_path.glob("s.old-*"))
    assert len(aside) == 1 and load_suite(aside[0]).version == 1  # the old suite moved aside, intact
    assert load_suite(dest).version == 2
    log = load_suite(dest).manifest["changelog"]
    assert [e["version"] for e in log] == [1, 2] and "- v2 (" in (dest / "README.md").read_text()
    assert not list(tmp_path.glob(".s.tmp-*"))


def test_test_candidates_close_to_dev_prompts_are_left_out(planted, tmp_path):
    """A finder that offers the test split copies of dev prompts (as shared token pools could): the build drops them,
    takes spare candidates instead, counts them, and the suite verifies (no dev/test pair over 30% overlap)."""
    offered = {}

    def leaky(bridge, target, *, cfg, seed, n, windows, out_dir, exclude_docs=frozenset(), progress=None):
        cands, info = corpus_finder(bridge, target, cfg=cfg, seed=seed, n=n, windows=windows, out_dir=out_dir,
                                    exclude_docs=exclude_docs)
        split = "test" if "dev" in offered else "dev"
        offered[split] = cands
        return (cands if split == "dev" else offered["dev"] + cands), info  # every dev candidate offered again

    path = build_suite(small_config(), tmp_path / "s", find=leaky, bridge=planted)
    suite = load_suite(path)
    dev_tokens = {tuple(r["tokens"]) for r in suite.rows(split="dev")}
    assert not dev_tokens & {tuple(r["tokens"]) for r in suite.rows(split="test")}
    assert suite.manifest["build"]["test"]["candidates_too_close_to_other_split"] >= 1  # copies reached the cut
    verify_suite(path, sample=0, bridge=planted)


def test_failed_build_leaves_no_suite_only_its_resumable_state(planted, tmp_path):
    def finds_too_few(bridge, target, **kw):
        return [], {"engine": "stub"}

    with pytest.raises(AdvdlaError, match="0 of 0 candidates hold on the final truth, 3 needed.*stays in .*s.partial"):
        build_suite(small_config(), tmp_path / "s", find=finds_too_few, bridge=planted)
    assert [p.name for p in tmp_path.iterdir()] == [".s.partial"]  # no suite; the finished steps, for a rerun


def test_up_to_keeps_what_holds_and_records_what_was_asked(planted, tmp_path):
    def finds_two(bridge, target, *, n, **kw):
        return corpus_finder(bridge, target, n=2, **kw)

    with pytest.raises(AdvdlaError, match="candidates hold on the final truth, 3 needed"):
        build_suite(small_config(), tmp_path / "exact", find=finds_two, bridge=planted)
    path = build_suite(small_config(), tmp_path / "s", find=finds_two, bridge=planted, up_to=True)
    manifest = json.loads((path / "manifest.json").read_text())
    for split, asked in (("dev", 3), ("test", 2)):
        assert manifest["build"][split]["adversarial_asked"] == asked
        kept = manifest["splits"][split]["adversarial"]
        assert kept == 2 - manifest["build"][split]["candidates_rejected_on_truth"] <= asked
    assert manifest["splits"]["dev"]["adversarial"] < 3  # fewer than asked, and the build still wrote the suite
    verify_suite(path, bridge=planted)


# --------------------------------------------------------------------------------------------- verify


def test_verify_passes_on_a_fresh_suite(planted, built):
    report = verify_suite(built, sample=2, bridge=planted)
    assert report["fingerprint"] == load_suite(built).fingerprint and len(report["examples_rederived"]) == 2


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_verify_catches_a_tampered_file(planted, built, tmp_path):
    s = _copy(built, tmp_path / "t")
    with open(s / "data/test.parquet", "ab") as f:
        f.write(b"\0")
    with pytest.raises(AdvdlaError, match="data/test.parquet was modified"):
        verify_suite(s, sample=0, bridge=planted)


def test_verify_catches_a_changed_truth_value_even_with_hashes_redone(planted, built, tmp_path):
    """A forger who also rewrites the hashes and the chain is still caught by re-deriving the truth."""
    suite = load_suite(built)
    rows = suite.dataset.to_list()
    for r in rows:  # a careful forger keeps ie_mean = te_mean - de_mean
        r["te_mean"] = [v + 0.01 for v in r["te_mean"]]
        r["ie_mean"] = [v + 0.01 for v in r["ie_mean"]]
    forged = _forge(suite, rows, tmp_path / "forged")
    verify_suite(forged, sample=0, bridge=planted)  # hashes, chain and each example's consistency hold
    with pytest.raises(AdvdlaError, match=r"te_mean\[L0H0\] is .* on the model, .* in the suite"):
        verify_suite(forged, sample=1, bridge=planted)


def _forge(suite, rows, dest):
    """Save ``rows`` as a suite with its hashes and fingerprint chain redone, as a forger would."""
    manifest = dict(suite.manifest)
    chain = Chain.replay(manifest["fingerprints"][:-1])
    chain.add("examples", rows_fingerprint_args(rows))
    manifest.update(fingerprints=chain.to_list(), fingerprint=chain.fingerprint)
    return save_suite([Example.from_row(r) for r in rows], manifest, dest, readme="forged\n")


def test_verify_catches_inconsistent_examples_and_leaking_splits(planted, built, tmp_path):
    suite = load_suite(built)
    rows = suite.dataset.to_list()
    rows[0]["te_mean"] = [v + 0.01 for v in rows[0]["te_mean"]]  # IE no longer TE - DE
    with pytest.raises(AdvdlaError, match="ie_mean is not te_mean - de_mean"):
        verify_suite(_forge(suite, rows, tmp_path / "a"), sample=0, bridge=planted)
    rows = suite.dataset.to_list()
    rows[1]["method_resamples"][0] = rows[1]["resamples"][0]  # a method sees one of the truth's counterfactuals
    with pytest.raises(AdvdlaError, match="a method resample equals a truth resample"):
        verify_suite(_forge(suite, rows, tmp_path / "b"), sample=0, bridge=planted)
    rows = suite.dataset.to_list()
    rows[0]["mechanism"] = "baseline" if rows[0]["mechanism"] != "baseline" else "compensation"
    with pytest.raises(AdvdlaError, match="stored mechanism"):
        verify_suite(_forge(suite, rows, tmp_path / "c"), sample=0, bridge=planted)
    rows = suite.dataset.to_list()
    test_row = next(r for r in rows if r["split"] == "test")
    dev_row = next(r for r in rows if r["split"] == "dev" and r["kind"] == test_row["kind"])
    test_row["tokens"] = dev_row["tokens"][:4] + test_row["tokens"][4:]  # 4 of 12 positions shared: 33% > 30%
    with pytest.raises(AdvdlaError, match="share 33% of their tokens"):
        verify_suite(_forge(suite, rows, tmp_path / "d"), sample=0, bridge=planted)


def test_verify_catches_rows_that_do_not_match_the_chain(planted, built, tmp_path):
    suite = load_suite(built)
    rows = suite.dataset.to_list()
    rows[0]["ld"] += 1.0
    forged = save_suite([Example.from_row(r) for r in rows], dict(suite.manifest), tmp_path / "forged", readme="x\n")
    with pytest.raises(AdvdlaError, match="do not match the fingerprint chain"):
        verify_suite(forged, sample=0, bridge=planted)


def test_verify_catches_a_different_model(built, tiny):
    with pytest.raises(AdvdlaError, match="the suite was built on 'planted-erasure' with weights"):
        verify_suite(built, sample=1, bridge=tiny)


# --------------------------------------------------------------------------------------------- loading errors


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.update(extra_field=1), "unknown manifest field.*extra_field"),
        (lambda m: m.update(schema_version=99), "schema version 99 is newer"),
        (lambda m: m.update(schema_version=1), r"schema version 1, from an older advdla .*rebuild it with "
                                               r"`advdla suite build suites/planted-small.yaml --force`"),
        (lambda m: m.pop("schema_version"), "no integer schema_version"),
        (lambda m: m.pop("fingerprint"), "lacks fingerprint"),
    ],
)
def test_bad_manifest_is_one_clear_line(built, tmp_path, edit, message):
    s = _copy(built, tmp_path / "m")
    m = json.loads((s / "manifest.json").read_text())
    edit(m)
    (s / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(AdvdlaError, match=message):
        load_suite(s)


def test_missing_files(built, tmp_path):
    with pytest.raises(AdvdlaError, match="no such directory"):
        load_suite(tmp_path / "none")
    s = _copy(built, tmp_path / "f")
    (s / "data/dev.parquet").unlink()
    with pytest.raises(AdvdlaError, match="data/dev.parquet is missing"):
        load_suite(s)
    (s / "manifest.json").write_text("{not json")
    with pytest.raises(AdvdlaError, match="not valid JSON"):
        load_suite(s)


def test_rows_rejects_unknown_split(built):
    with pytest.raises(AdvdlaError, match="unknown split 'train'"):
        load_suite(built).rows(split="train")


# --------------------------------------------------------------------------------------------- regenerate-test


def test_regenerate_test_keeps_dev_and_moves_the_chain(planted, built, tmp_path):
    s = _copy(built, tmp_path / "r")
    old = load_suite(s)
    regenerate_test(s, seed=5, find=corpus_finder, bridge=planted)
    new = load_suite(s)
    assert new.rows(split="dev") == old.rows(split="dev")
    old_test, new_test = (
        {r["example_id"] for r in old.rows(split="test")},
        {r["example_id"] for r in new.rows(split="test")},
    )
    assert len(new_test) == 3 and new_test != old_test
    assert not new_test & {r["example_id"] for r in new.rows(split="dev")}
    m = new.manifest
    assert m["test_seed"] == 5 and [h["seed"] for h in m["test_history"]] == [0, 5]
    assert [l["step"] for l in m["fingerprints"]][-2:] == ["regenerate-test", "examples"]
    assert m["fingerprints"][3] == old.manifest["fingerprints"][3] and m["fingerprint"] != old.fingerprint
    assert "test split regenerated with seed 5" in (s / "README.md").read_text()
    verify_suite(s, sample=1, bridge=planted)
    with pytest.raises(AdvdlaError, match="seed 5 already made"):
        regenerate_test(s, seed=5, find=corpus_finder, bridge=planted)


# -------------------------------------------------------------------------------- real search, shipped suite


def test_real_search_builds_are_deterministic(planted, tmp_path):
    cfg = small_config(search=dict(trials=6, batch=8), splits=dict(n_dev=2, n_test=1, n_natural=1))
    a = build_suite(cfg, tmp_path / "a", bridge=planted)
    b = build_suite(cfg, tmp_path / "b", bridge=planted)
    ma, mb = load_suite(a).manifest, load_suite(b).manifest
    assert (
        ma["fingerprint"] == mb["fingerprint"]
        and ma["search"]["dev"]["per_target"][0]["engine"] == "advdla.search.run_search"
    )


def test_shipped_planted_suite_verifies(planted):
    path = SHIPPED / "planted-erasure"
    if not path.exists():
        pytest.skip("suites/planted-erasure has not been built yet")
    report = verify_suite(path, sample=3, bridge=planted)
    suite = load_suite(path)
    assert report["fingerprint"] == suite.fingerprint
    assert suite.manifest["splits"] == {
        "dev": {"adversarial": 12, "natural": 12},
        "test": {"adversarial": 12, "natural": 12},
    }
    assert suite.manifest["schema_version"] == 2 and suite.version == 3
    for split in ("dev", "test"):  # every adversarial example is labelled, by its final truth
        assert sum(suite.manifest["mechanisms"][split].values()) == 12
        assert "none" not in suite.manifest["mechanisms"][split]


def test_natural_scan_takes_several_windows_a_document_when_one_pass_is_not_enough(planted):
    """A corpus of a few hundred documents offers one pass of windows; the scan draws more passes (distinct windows
    of the split's documents only) up to natural_scan, and its first pass is the one-window-a-document draw."""
    from advdla.progress import silent
    from advdla.suites.build import _context
    from advdla.suites.natural import _scan_windows

    ctx = _context(small_config(splits=dict(n_dev=3, n_test=2, n_natural=1, natural_scan=10_000)), planted,
                   corpus_finder, silent)
    passes = list(_scan_windows(ctx, "dev", seed=0, exclude=set()))
    docs = [d for _, ds in passes for d in ds]
    windows = [tuple(t) for tokens, _ in passes for t in tokens.tolist()]
    eligible = sum(1 for d in ctx.docs["dev"] if ctx.windows.lengths[d] >= 12)
    assert len(passes) > 1 and len(windows) > eligible and len(windows) <= 10_000
    assert len(set(windows)) == len(windows) and set(docs) <= ctx.docs["dev"]
    first = ctx.windows.sample(12, eligible, seed=7, exclude=ctx.docs["test"])[0].tolist()
    assert passes[0][0].tolist() == [t for i, t in enumerate(first) if t not in first[:i]]  # the draw, once each
