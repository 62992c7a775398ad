"""A tiny GPT-2 with a hand-planted erasure: head L0H1 writes a direction, head L1H2 erases it.

Context: DLA credits a head with everything its output does to the logits *directly*. The paper's point is
that a later component can read that output and write its negative ("erasure"): the head keeps a large DLA
while removing it changes nothing. Real models show this only partially and noisily, so advdla's tests need
a model where the answer is known by construction. :func:`build_planted_erasure` builds one; :data:`PLANTED`
holds the known answers (writer, eraser, the honest head, the two tokens).

Construction (3 layers, 4 heads of size 16, d_model 64, GELU MLPs, the byte tokenizer of
:mod:`advdla.models.tiny`). Pick five orthonormal residual directions, all with zero mean over d_model so
that LayerNorm's centring leaves them alone (and compatibility mode's centring of writing weights too):

- ``c`` (constant): every token embedding holds ``C * c`` with C = 8. It dominates the residual, so every
  LayerNorm divides by almost the same scale (rms about 1) at every position and layer. This is what makes
  the erasure, a linear operation performed *through* a LayerNorm, close to exact.
- ``r`` (ramp): position j's embedding is ``R * (j / (n_ctx - 1) - 1/2) * r``. A head whose query reads
  ``c`` and whose key reads ``r`` scores key j in proportion to j; under the causal mask the largest allowed
  j is the query's own position, so with a steep enough slope the head attends to its current position
  only (about ``exp(-ATTN_GAP)`` leaks to the previous one). All three planted heads use this.
- ``f`` (token feature): token t's embedding holds ``F * s(t) * f`` with ``s(t)`` a seeded value, random
  sign, magnitude in [0.5, 1] (:func:`token_feature`).
- ``u`` (written, then erased) and ``v`` (honest): where the planted heads write.

The three planted heads (everything else: small seeded random weights whose outputs are confined to the
58 remaining "junk" directions, so they never touch c, r, f, u or v):

- writer ``L0H1``: OV reads ``f`` and writes ``A * s(t) * u`` (A = 1) at the current position. Its norm is
  6-12% of the residual's (the constant ``c`` holds most of it): an analysis that skips "tiny" writers must
  measure them against the mean-centred residual, or use a threshold below that.
- eraser ``L1H2``: OV reads ``u`` and writes ``-u`` times what it read, with its gain set to the
  residual's nominal rms so that LayerNorm's division is undone: its output is ``-A * s(t) * u`` to
  within about 1%. So PR(eraser, writer) is about -1, and after layer 1 the residual has no ``u`` left.
- honest ``L2H0``: OV reads ``f`` and writes ``B * s(t) * v`` (B = 0.5). Nothing erases it.

The unembedding favours the two tokens a = ``+`` and b = ``-`` above all others (``W_U[:, a] + W_U[:, b]``
holds ``2 * KAPPA * c``, and the residual always holds c), so they are the top-2 predictions everywhere,
and separates them along u and v: ``W_U[:, a] - W_U[:, b] = 2 * (LAMBDA * u + MU * v)`` (plus small noise).
At the last position, with t1, t2 the clean top-2 (a, b in the order sign(s) picks):

- LD = logit(t1) - logit(t2) is about ``2 * MU * B * |s|`` (= 4 |s|): all of it from the honest head.
- DLA(writer) is about ``2 * LAMBDA * A * |s|`` (= 6 |s|), 1.5 times LD, the largest of any head;
  DLA(eraser) is about minus that.
- TE(writer): resample the writer's input and its output changes, but the eraser erases the new output just
  as well, so LD moves by well under 1% of DLA(writer). TE(honest) is its DLA minus what the resample's own
  feature brings (about 0.9 of it on corpus text).
- V-composition patching (the writer's output removed from the eraser's value input) leaves the eraser
  nothing to read: its output, and so PR(eraser, writer), drops to 0.
- Erasure-aware DLA (a head's DLA scaled by PR(final residual, head output)) is about 0 for the writer,
  since the final residual has no u component, and about DLA for the honest head.

Same seed, same weights (and so the same fingerprint); the seed moves the directions, the feature table and
the random junk weights, never the known answers in :data:`PLANTED`.

Variants (:class:`PlantedConfig`, :func:`build_planted`): any number of layers and heads, context length,
the byte or a word-level tokenizer (:func:`advdla.models.tiny.word_tokenizer`), the planted heads anywhere
(writer before eraser, nothing planted in the writer's layer but the writer), a head with a baseline offset,
and two options that make discovery harder:

- ``baseline``: a head that reads the constant ``c`` and writes ``E * w`` (E = 1.5) along a direction ``w`` of
  its own that the unembedding separates (``W_U[:, a] - W_U[:, b]`` gains ``2 * NU * w``): the same output on
  every text. Its DLA is about ``2 * NU * E`` (= 3) everywhere, but resampling its input changes nothing, so its
  direct and total effects are about 0: DLA's zero baseline is the whole gap (the ``baseline`` mechanism, which
  ``dla-relative`` removes by subtracting the head's mean DLA over resamples). Nothing reads ``w``.

- ``own_feature``: the writer reads a feature ``g`` of its own, with signs independent of the honest head's
  ``f``. Its DLA then has either sign (a mean signed DLA near 0, even negative, while its |DLA| is the
  largest), so only a ranking by magnitude finds it;
- ``decoy``: a head at or after the eraser's layer that reads the writer's feature and writes ``-D`` times
  it along ``u``: its output is anti-correlated with the writer's at every position (a reliably negative
  PR) although it never reads the writer, so V-composition patching leaves it unchanged. An analysis that
  names it an eraser has confused correlation with erasure.

:data:`PLANTED` / :func:`build_planted_erasure` are the default config (``planted-erasure``);
:data:`PLANTED_WORDS` is the registered word-level variant ``planted-words`` (32 positions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from advdla.models.tiny import BYTE_VOCAB, WORD_SPECIALS, WORDS, byte_tokenizer, word_tokenizer

__all__ = ["PlantedSpec", "PLANTED", "PlantedConfig", "PLANTED_WORDS_CONFIG", "PLANTED_WORDS",
           "PLANTED_BASELINE_CONFIG", "PLANTED_BASELINE", "build_planted", "planted_skeleton", "build_planted_erasure",
           "planted_directions", "token_feature"]

N_LAYER, N_HEAD, D_MODEL, N_CTX = 3, 4, 64, 128
C = 8.0  # constant direction: fixes every LayerNorm scale near C / sqrt(d_model) = 1
R = 1.0  # positional ramp amplitude (small: it barely moves the norm)
F = 0.5  # token feature amplitude
A = 1.0  # writer output amplitude per unit feature (its norm: 6-12% of the residual norm)
B = 0.5  # honest head output amplitude per unit feature
KAPPA, LAMBDA, MU = 1.5, 3.0, 4.0  # unembedding: common (a, b) preference, u-separation, v-separation
ATTN_GAP = 20.0  # attention score gap between the current position and the one before it
JUNK_STD = 0.02  # random weights (GPT-2's init scale), outputs confined to the junk directions
TOKEN_NOISE = 0.1  # per-coordinate token-embedding noise in the junk directions
UNEMBED_NOISE = 0.1  # other tokens' unembedding rows (and a little on a, b's junk coordinates)
D = 0.3  # decoy output amplitude per unit feature (a tenth of what the eraser cancels, but at every position)
E, NU = 1.5, 1.0  # baseline head: output amplitude along w (on every text) and the unembedding's w-separation


@dataclass(frozen=True)
class PlantedSpec:
    """The known answers: which heads write, erase and honestly contribute, and the two logit tokens."""

    writer: str
    eraser: str
    honest: str
    token_a: int
    token_b: int


    decoy: str | None = None
    baseline: str | None = None


PLANTED = PlantedSpec(writer="L0H1", eraser="L1H2", honest="L2H0", token_a=ord("+"), token_b=ord("-"))


def _word_id(word: str) -> int:
    return len(WORD_SPECIALS) + WORDS.index(word)


@dataclass(frozen=True)
class PlantedConfig:
    """A planted-erasure model: sizes, tokenizer, and where the planted heads sit ((layer, head) pairs)."""

    seed: int = 0
    n_layers: int = N_LAYER
    n_heads: int = N_HEAD
    n_ctx: int = N_CTX
    tokenizer: str = "byte"  # byte | word
    writer: tuple[int, int] = (0, 1)
    eraser: tuple[int, int] = (1, 2)
    honest: tuple[int, int] = (2, 0)
    decoy: tuple[int, int] | None = None
    own_feature: bool = False  # the writer reads its own feature g (signs independent of the honest head's f)
    baseline: tuple[int, int] | None = None  # a head that writes the same E * w on every text

    @property
    def vocab(self) -> int:
        return BYTE_VOCAB if self.tokenizer == "byte" else len(WORD_SPECIALS) + len(WORDS)

    def spec(self) -> PlantedSpec:
        name = lambda lh: f"L{lh[0]}H{lh[1]}"  # noqa: E731
        a, b = (ord("+"), ord("-")) if self.tokenizer == "byte" else (_word_id("+"), _word_id("-"))
        return PlantedSpec(name(self.writer), name(self.eraser), name(self.honest), a, b,
                           name(self.decoy) if self.decoy else None, name(self.baseline) if self.baseline else None)

    @property
    def extra_directions(self) -> tuple[str, ...]:
        """The directions beyond c, r, f, u, v that this variant needs, in basis order."""
        return ("g",) * self.own_feature + ("w",) * bool(self.baseline)

    def check(self) -> None:
        heads = [h for h in (self.writer, self.eraser, self.honest, self.decoy, self.baseline) if h]
        assert len(set(heads)) == len(heads), "planted heads must differ"
        assert all(0 <= l < self.n_layers and 0 <= h < self.n_heads for l, h in heads), "planted head out of range"
        assert self.writer[0] < self.eraser[0], "the eraser must come after the writer"
        assert not self.decoy or self.decoy[0] >= self.eraser[0], "the eraser must not read the decoy"
        assert self.tokenizer in ("byte", "word")


# The registered word-level variant: 32 positions, writer and eraser elsewhere, a decoy, the writer on its own feature.
PLANTED_WORDS_CONFIG = PlantedConfig(seed=1, n_ctx=32, tokenizer="word", writer=(0, 3), eraser=(1, 0),
                                     honest=(2, 1), decoy=(1, 3), own_feature=True)
PLANTED_WORDS = PLANTED_WORDS_CONFIG.spec()
# The registered baseline variant: the default model plus a head (L2H1) whose output is the same on every text.
PLANTED_BASELINE_CONFIG = PlantedConfig(baseline=(2, 1))
PLANTED_BASELINE = PLANTED_BASELINE_CONFIG.spec()



def planted_directions(seed: int = 0, *, extra: tuple[str, ...] = ()) -> dict[str, Float[Tensor, " d_model"]]:
    """Orthonormal, mean-zero residual directions c, r, f, u, v, then one per name in ``extra`` (g, w), and
    ``junk`` [58 - len(extra), d_model] spanning the rest."""
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(D_MODEL, D_MODEL, generator=g, dtype=torch.float64)
    m -= m.mean(0, keepdim=True)  # every column mean-zero, so the basis lies in LayerNorm's centred subspace
    q, _ = torch.linalg.qr(m[:, : D_MODEL - 1])
    basis = q.T.float()  # [63, d_model]
    out = {"c": basis[0], "r": basis[1], "f": basis[2], "u": basis[3], "v": basis[4], "junk": basis[5 + len(extra):]}
    return out | {name: basis[5 + i] for i, name in enumerate(extra)}


def token_feature(seed: int = 0, vocab: int = BYTE_VOCAB) -> Float[Tensor, " vocab"]:
    """s(t) for every token: a seeded sign times a magnitude in [0.5, 1] (never near 0, so LD never vanishes)."""
    g = torch.Generator().manual_seed(seed + 1)
    sign = torch.randint(0, 2, (vocab,), generator=g).float() * 2 - 1
    return sign * (0.5 + 0.5 * torch.rand(vocab, generator=g))


def build_planted_erasure(seed: int = 0) -> tuple[Any, Any]:
    """The planted-erasure GPT-2 (HF ``GPT2LMHeadModel``, eval mode) and the byte tokenizer."""
    model, tokenizer, _ = build_planted(PlantedConfig(seed=seed))
    return model, tokenizer


def planted_skeleton(config: PlantedConfig) -> tuple[Any, Any, PlantedSpec]:
    """The planted model's architecture (an HF ``GPT2LMHeadModel`` with GPT-2's seeded random init, eval mode), its
    tokenizer and its known answers: what :func:`build_planted` plants into, and what shipped weights load into."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config.check()
    torch.manual_seed(config.seed)
    eos = BYTE_VOCAB - 1 if config.tokenizer == "byte" else 1
    cfg = GPT2Config(n_layer=config.n_layers, n_head=config.n_heads, n_embd=D_MODEL, n_inner=4 * D_MODEL,
                     vocab_size=config.vocab, n_positions=config.n_ctx, bos_token_id=eos, eos_token_id=eos,
                     tie_word_embeddings=False)
    tokenizer = byte_tokenizer() if config.tokenizer == "byte" else word_tokenizer()
    return GPT2LMHeadModel(cfg).eval(), tokenizer, config.spec()


def build_planted(config: PlantedConfig) -> tuple[Any, Any, PlantedSpec]:
    """A planted-erasure GPT-2 as ``config`` places it, its tokenizer, and its known answers.

    Built from code: its last bits depend on the CPU's kernels (see :mod:`advdla.models.shipped`, which holds the
    registered variants' weights as files).
    """
    model, tokenizer, spec = planted_skeleton(config)
    seed, vocab = config.seed, config.vocab
    d, s = planted_directions(seed, extra=config.extra_directions), token_feature(seed, vocab)
    s_w = token_feature(seed + 1000, vocab) if config.own_feature else s  # what the writer (and decoy) read
    g = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        _embeddings(model, d, s, g, config, s_w)
        for layer in range(config.n_layers):
            _junk_block(model.transformer.h[layer], d["junk"], g)
        rms = _nominal_rms(model, d, s_w, config)
        feat = d["g"] if config.own_feature else d["f"]
        plant = lambda lh, **kw: _plant_head(model, *lh, d=d, config=config, **kw)  # noqa: E731
        plant(config.writer, read=feat, write=d["u"], gain=A * rms[config.writer[0]] / F)
        plant(config.eraser, read=d["u"], write=-d["u"], gain=rms[config.eraser[0]])  # undo LN, negate
        plant(config.honest, read=d["f"], write=d["v"], gain=B * rms[config.honest[0]] / F)
        if config.decoy:
            plant(config.decoy, read=feat, write=-d["u"], gain=D * rms[config.decoy[0]] / F)
        if config.baseline:
            plant(config.baseline, read=d["c"], write=d["w"], gain=E * rms[config.baseline[0]] / C)
        _unembedding(model, d, g, spec)
    return model, tokenizer, spec


def _embeddings(model: Any, d: dict[str, Tensor], s: Tensor, g: torch.Generator, config: PlantedConfig,
                s_w: Tensor) -> None:
    noise = torch.randn(config.vocab, d["junk"].shape[0], generator=g) * TOKEN_NOISE
    own = s_w[:, None] * F * d["g"] if config.own_feature else 0.0
    model.transformer.wte.weight.copy_(C * d["c"] + s[:, None] * F * d["f"] + own + noise @ d["junk"])
    ramp = torch.arange(config.n_ctx).float() / (config.n_ctx - 1) - 0.5
    model.transformer.wpe.weight.copy_(R * ramp[:, None] * d["r"])


def _junk_block(block: Any, junk: Tensor, g: torch.Generator) -> None:
    """Small random reading weights; writing weights projected onto the junk directions; all biases zero."""
    onto_junk = junk.T @ junk  # [d_model, d_model] projector
    block.attn.c_attn.weight.copy_(torch.randn(D_MODEL, 3 * D_MODEL, generator=g) * JUNK_STD)
    block.attn.c_proj.weight.copy_(torch.randn(D_MODEL, D_MODEL, generator=g) * JUNK_STD @ onto_junk)
    block.mlp.c_fc.weight.copy_(torch.randn(D_MODEL, 4 * D_MODEL, generator=g) * JUNK_STD)
    block.mlp.c_proj.weight.copy_(torch.randn(4 * D_MODEL, D_MODEL, generator=g) * JUNK_STD @ onto_junk)
    for bias in (block.attn.c_attn.bias, block.attn.c_proj.bias, block.mlp.c_fc.bias, block.mlp.c_proj.bias):
        bias.zero_()


def _nominal_rms(model: Any, d: dict[str, Tensor], s_w: Tensor, config: PlantedConfig) -> list[float]:
    """The residual's rms over d_model (what LayerNorm divides by), averaged over tokens and positions, per layer.

    Layers up to the writer's see embeddings; later layers also hold the writer's output (A s u); the eraser's
    and decoy's outputs and the junk heads' outputs are ignored: the first is what this gain is for, the others
    are about 1% of the norm.
    """
    emb = (model.transformer.wte.weight[:, None, :] + model.transformer.wpe.weight[None, :, :]).double()
    written = emb + (A * s_w.double())[:, None, None] * d["u"].double()
    # Rounded: a mean over this many floats depends on the reduction order, which changes with the thread count;
    # unrounded, the weights (and the fingerprint) would differ between a 1-thread and a 2-thread process.
    rms0 = round(emb.pow(2).mean(-1).sqrt().mean().item(), 6)
    rms1 = round(written.pow(2).mean(-1).sqrt().mean().item(), 6)
    return [rms0 if layer <= config.writer[0] else rms1 for layer in range(config.n_layers)]


def _plant_head(model: Any, layer: int, head: int, *, read: Tensor, write: Tensor, gain: float,
                d: dict[str, Tensor], config: PlantedConfig) -> None:
    """Head (layer, head) attends to its own position (query reads c, key reads the ramp r) and maps read -> write.

    In head coordinates only dimension 0 is used: q0 = a * (x.c), k0 = a * (x.r), v0 = gain * (x.read),
    output = v0 * write. With LN(x).c about C / rms and the ramp rising R / (N_CTX - 1) per position, the score
    gap between adjacent keys is a^2 * (C / rms) * (R / rms) / (N_CTX - 1) / sqrt(d_head), set to ATTN_GAP.
    """
    attn = model.transformer.h[layer].attn
    d_head = D_MODEL // config.n_heads
    a = math.sqrt(ATTN_GAP * (config.n_ctx - 1) * math.sqrt(d_head) / (C * R))  # rms ~ 1 at every layer
    cols = [part * D_MODEL + head * d_head for part in range(3)]  # q, k, v column blocks of c_attn
    for col in cols:
        attn.c_attn.weight[:, col : col + d_head] = 0.0
    attn.c_attn.weight[:, cols[0]] = a * d["c"]
    attn.c_attn.weight[:, cols[1]] = a * d["r"]
    attn.c_attn.weight[:, cols[2]] = gain * read
    attn.c_proj.weight[head * d_head : (head + 1) * d_head] = 0.0
    attn.c_proj.weight[head * d_head] = write


def _unembedding(model: Any, d: dict[str, Tensor], g: torch.Generator, spec: PlantedSpec) -> None:
    """Random rows for every token; a and b favoured along c and separated along u (writer), v (honest) and, with
    a baseline head, w."""
    w = torch.randn(model.lm_head.weight.shape[0], D_MODEL, generator=g) * UNEMBED_NOISE
    a, b = spec.token_a, spec.token_b
    shared = KAPPA * d["c"]
    sep = LAMBDA * d["u"] + MU * d["v"] + (NU * d["w"] if spec.baseline else 0.0)
    w[a] = shared + sep + w[a] @ d["junk"].T @ d["junk"]  # keep only junk-direction noise on a and b
    w[b] = shared - sep + w[b] @ d["junk"].T @ d["junk"]
    model.lm_head.weight.copy_(w)
