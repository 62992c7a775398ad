"""Small seeded random models for tests: ``tiny-gpt2`` (LayerNorm, learned positions) and ``tiny-llama-gqa``
(RMSNorm, rotary, grouped-query attention), both with a byte-level tokenizer built in memory.

Same seed, same weights: they need no files and no network, and boot in well under a second.
"""

from __future__ import annotations

from typing import Any

import torch

BYTE_VOCAB = 257  # 256 bytes + <|endoftext|>


def byte_tokenizer() -> Any:
    """A byte-level tokenizer (one token per UTF-8 byte, id 256 = <|endoftext|>), built without any files."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: byte for byte, ch in _bytes_to_unicode().items()} | {"<|endoftext|>": 256}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (what the ByteLevel pre-tokenizer emits)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1),
            *range(ord("\u00ae"), ord("\u00ff") + 1)]
    moved = [b for b in range(256) if b not in keep]
    return {b: chr(b) for b in keep} | {b: chr(256 + i) for i, b in enumerate(moved)}


def tiny_gpt2_hf(*, seed: int = 0, n_layer: int = 2, n_head: int = 4, n_embd: int = 64, n_positions: int = 128) -> Any:
    """A random GPT-2 with every hook the bridge offers; the weights depend only on the seed and sizes."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd, n_inner=4 * n_embd, vocab_size=BYTE_VOCAB,
                     n_positions=n_positions, bos_token_id=256, eos_token_id=256)
    return GPT2LMHeadModel(cfg).eval()


def tiny_llama_gqa_hf(*, seed: int = 0) -> Any:
    """A random Llama with 6 query heads sharing 2 key/value heads: the GQA case SmolLM2 has, in miniature."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2, hidden_size=48,
                      intermediate_size=96, vocab_size=BYTE_VOCAB, max_position_embeddings=128,
                      tie_word_embeddings=False, bos_token_id=256, eos_token_id=256)
    return LlamaForCausalLM(cfg).eval()
