"""Text sources (through HF ``datasets``) and the same-length resample sampler.

Context: ground truth in advdla is causal: a component's input is replaced by its input on an *unrelated*
text with exactly as many tokens as the prompt (the paper's control), averaged over R such resamples.
This module supplies both the prompts and those resamples.

Sources, all returned as a ``datasets.Dataset`` with columns ``text``, ``source`` (the genre, ``prose`` or ``code``, for
the built-in corpus; the corpus's name otherwise) and ``file`` (the source file a document was cut from: the unit of
independence, since the ~2,000-character documents of one file share style, vocabulary and often whole lines):
- ``builtin`` (default, offline): English prose from ``pydoc_data.topics`` (the Python reference manual,
  which ships with every CPython) and stdlib source code, cut into documents of about 2,000 characters;
  the paper used C4 prose plus code, so this mix keeps its spirit without a download.
- an HF dataset name, optionally ``name:config:split`` (needs the hub or a filled cache);
- local ``.txt`` / ``.jsonl`` / ``.parquet`` files or a directory of them.
"""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor

from advdla.errors import AdvdlaError

DOC_CHARS = 2000
# Stdlib modules whose source joins the built-in corpus (sorted, fixed: same Python, same corpus).
_CODE_MODULES = ("argparse", "csv", "dataclasses", "difflib", "fractions", "functools", "heapq", "json/decoder",
                 "json/encoder", "textwrap", "pprint", "shlex", "statistics", "string", "tokenize", "calendar",
                 "bisect", "colorsys", "configparser", "contextlib", "copy", "enum", "fnmatch", "glob", "gzip",
                 "html/parser", "ipaddress", "numbers", "operator", "queue", "random", "sched", "secrets",
                 "selectors", "tempfile", "timeit", "uuid", "zipfile")


@dataclass(frozen=True)
class Corpus:
    """A text dataset plus its fingerprint (sha256 over its texts, in order)."""

    name: str
    dataset: Any  # datasets.Dataset with columns text, source

    @property
    def fingerprint(self) -> str:
        return _fingerprint_texts(tuple(self.dataset["text"]))

    def __len__(self) -> int:
        return len(self.dataset)


def load_corpus(source: str = "builtin") -> Corpus:
    """Load ``builtin``, local files, or an HF dataset (``name[:config[:split]]``) as a :class:`Corpus`."""
    import datasets

    if source == "builtin":
        rows = _builtin_rows()
        columns = {"text": [r[0] for r in rows], "source": [r[1] for r in rows], "file": [r[2] for r in rows]}
        return Corpus("builtin", datasets.Dataset.from_dict(columns))
    path = Path(source).expanduser()
    if path.exists():
        return Corpus(str(path), _local_dataset(path))
    return Corpus(source, _hub_dataset(source))


def _builtin_rows() -> list[tuple[str, str, str]]:
    """(text, genre, source file) per document: a pydoc topic counts as its own source (``pydoc:<topic>``, a section
    of the reference manual), a stdlib module as one (``stdlib:<module>.py``)."""
    from pydoc_data.topics import topics

    rows = [(chunk, "prose", f"pydoc:{key}") for key in sorted(topics) for chunk in _chunks(topics[key])]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for mod in _CODE_MODULES:
        file = stdlib / f"{mod}.py"
        if file.exists():
            rows += [(chunk, "code", f"stdlib:{mod}.py") for chunk in _chunks(file.read_text(encoding="utf-8"))]
    return rows


def source_files(corpus: Corpus) -> list[str]:
    """The source file of every document, in corpus order (a corpus without a ``file`` column: each document its
    own source, ``doc<i>``)."""
    if "file" in corpus.dataset.column_names:
        return list(corpus.dataset["file"])
    return [f"doc{i}" for i in range(len(corpus))]


def _chunks(text: str, size: int = DOC_CHARS) -> list[str]:
    """Cut text into ~size-character documents at line breaks (no document is empty)."""
    out, cur = [], ""
    for line in text.splitlines(keepends=True):
        if len(cur) + len(line) > size and cur.strip():
            out.append(cur)
            cur = ""
        cur += line
    if cur.strip():
        out.append(cur)
    return out


def _local_dataset(path: Path) -> Any:
    import datasets

    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    kinds = {p.suffix for p in files}
    if not files or len(kinds) != 1 or not kinds <= {".txt", ".jsonl", ".json", ".parquet"}:
        raise AdvdlaError(f"corpus {path}: expected .txt, .jsonl or .parquet files of one kind, "
                          f"found {sorted(kinds) or 'none'}")
    kind = files[0].suffix
    if kind == ".txt":
        rows = [(c, str(f)) for f in files for c in _chunks(f.read_text(encoding="utf-8", errors="replace"))]
        return datasets.Dataset.from_dict({"text": [r[0] for r in rows], "source": [str(path)] * len(rows),
                                           "file": [r[1] for r in rows]})
    builder = "parquet" if kind == ".parquet" else "json"
    ds = datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train")
    return _with_text_column(ds, str(path))


def _hub_dataset(spec: str) -> Any:
    import datasets

    name, config, split = (spec.split(":") + [None, None])[:3]
    try:
        ds = datasets.load_dataset(name, config, split=split or "train")
    except Exception as exc:  # offline, unknown name, gated...: one line, not a traceback
        raise AdvdlaError(f"corpus {spec!r} is neither 'builtin', a local path, nor a loadable HF dataset "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); use --corpus builtin offline"
                          ) from None
    return _with_text_column(ds, spec)


def _with_text_column(ds: Any, label: str) -> Any:
    if "text" not in ds.column_names:
        raise AdvdlaError(f"corpus {label}: no 'text' column (columns: {', '.join(ds.column_names)})")
    ds = ds.select_columns(["text"])
    return ds.add_column("source", [label] * len(ds))


@lru_cache(maxsize=8)
def _fingerprint_texts(texts: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(hashlib.sha256(t.encode()).digest())
    return h.hexdigest()


class TokenWindows:
    """Tokenize a corpus once; then draw seeded windows of exactly ``n_tokens`` tokens from distinct documents.

    On most models windows are raw text, as in the paper's resamples. A model that needs its BOS token (the card's
    ``bos``; Gemma) gets it as every window's first token, followed by ``n_tokens - 1`` tokens of text: then every
    prompt, resample and natural window starts with it, and since a resample has it at the same position, patching
    never changes what position 0 holds. ``bos`` defaults to the one :func:`advdla.models.bridge.bridge_from_hf`
    marks on the model's tokenizer (``tokenizer.advdla_bos``). With ``exclude`` (document indices), draws avoid
    those documents, so a resample is unrelated to its prompt.
    """

    def __init__(self, corpus: Corpus, tokenizer: Any, *, bos: int | None = None):
        texts = list(corpus.dataset["text"])
        encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
        self.ids: list[np.ndarray] = [np.asarray(x, dtype=np.int64) for x in encoded]
        self.bos = bos if bos is not None else getattr(tokenizer, "advdla_bos", None)
        self.lengths = np.array([len(x) for x in self.ids]) + (self.bos is not None)  # BOS + text

    def sample(self, n_tokens: int, n: int, *, seed: int, exclude: set[int] = frozenset()
               ) -> tuple[Int[Tensor, "n pos"], list[int]]:
        """``n`` windows of ``n_tokens`` tokens from ``n`` distinct documents, and those documents' indices."""
        if n_tokens < 2:
            raise AdvdlaError(f"prompts need at least 2 tokens, got {n_tokens}")
        eligible = [i for i in np.flatnonzero(self.lengths >= n_tokens) if i not in exclude]
        if len(eligible) < n:
            raise AdvdlaError(f"the corpus has only {len(eligible)} documents of >= {n_tokens} tokens, {n} needed: "
                              f"use a shorter --seq-len or a larger corpus")
        rng = np.random.default_rng(seed)
        docs = rng.choice(eligible, size=n, replace=False)
        rows = [self._window(int(d), n_tokens, rng) for d in docs]
        return torch.tensor(np.stack(rows)), [int(d) for d in docs]

    def _window(self, doc: int, n_tokens: int, rng: np.random.Generator) -> np.ndarray:
        return self.window_at(doc, int(rng.integers(0, self.lengths[doc] - n_tokens + 1)), n_tokens)

    def window_at(self, doc: int, start: int, n_tokens: int) -> np.ndarray:
        """The window of ``n_tokens`` tokens of document ``doc`` whose text starts at token ``start`` (after the
        BOS token on a model that needs it)."""
        if self.bos is None:
            return self.ids[doc][start:start + n_tokens]
        return np.concatenate([[self.bos], self.ids[doc][start:start + n_tokens - 1]]).astype(np.int64)


def split_documents(windows: TokenWindows, *, seed: int) -> dict[str, set[int]]:
    """The corpus documents cut into two seeded halves, ``dev`` and ``test``: a suite draws each split's prompts,
    controls and resamples from its own half only, so the splits share no text by construction."""
    order = np.random.default_rng(seed).permutation(len(windows.ids))
    half = len(order) // 2
    return {"dev": {int(d) for d in order[:half]}, "test": {int(d) for d in order[half:]}}


def disjoint_resamples(windows: TokenWindows, n_tokens: int, sizes: list[int], *, seed: int,
                       exclude: set[int] = frozenset()) -> list[Int[Tensor, "r pos"]]:
    """Several resample sets (``sizes[i]`` texts each) from pairwise distinct documents, none in ``exclude``.

    One seeded draw of ``sum(sizes)`` windows from distinct documents, cut in order: no two sets (the truth's,
    the methods', a panel screen's) can hold text from the same document.
    """
    drawn = windows.sample(n_tokens, sum(sizes), seed=seed, exclude=exclude)[0]
    return list(torch.split(drawn, sizes))

