"""Source files: the unit of independence of a suite's examples.

Context: a suite's prompts are cut from ~2,000-character corpus documents (``Example.source_doc``), but documents cut
from one source file (one stdlib module, one section of the Python reference) share vocabulary, style and often
whole lines, so two prompts from one file are not two independent observations. Every interval clusters by source
file, and every verdict counts source files, not documents.

This module maps a suite's examples to their source files through the corpus the suite was built on (the manifest
names it and its fingerprint). A suite whose corpus cannot be loaded, or whose fingerprint differs from the corpus
loaded now, keeps one cluster per document and says so (:func:`source_files_of` returns the reason).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from advdla.corpus import load_corpus, source_files
from advdla.errors import AdvdlaError
from advdla.suites.store import Example

__all__ = ["source_files_of", "document_cluster"]


def document_cluster(example: Example) -> str:
    """The example's corpus document (``doc<i>``), or the example itself when it has none."""
    return f"doc{example.source_doc}" if example.source_doc >= 0 else example.example_id


def source_files_of(manifest: Mapping[str, Any], examples: list[Example]) -> tuple[dict[str, str], str | None]:
    """example id -> its source file, and None; or, where the suite's corpus is not the one loaded now, example id ->
    its document (:func:`document_cluster`) and a one-line reason."""
    corpus_meta = manifest.get("corpus") or {}
    name = corpus_meta.get("name", "builtin")
    try:
        corpus = load_corpus(name)
    except AdvdlaError as exc:
        return {e.example_id: document_cluster(e) for e in examples}, f"corpus {name!r} not loadable: {exc}"
    if corpus_meta.get("fingerprint") not in (None, corpus.fingerprint):
        return ({e.example_id: document_cluster(e) for e in examples},
                f"corpus {name!r} differs from the suite's (fingerprint {corpus.fingerprint[:12]} != "
                f"{str(corpus_meta['fingerprint'])[:12]}): clusters are documents")
    files = source_files(corpus)
    return {e.example_id: files[e.source_doc] if 0 <= e.source_doc < len(files) else document_cluster(e)
            for e in examples}, None
