"""Small seeded random models for tests: ``tiny-gpt2`` (LayerNorm, learned positions), ``tiny-llama-gqa``
(RMSNorm, rotary, grouped-query attention) and ``tiny-gemma3`` (Gemma 3's sandwich norms, one key/value head,
sliding-window layers), both with a byte-level tokenizer built in memory; and a word-level
tokenizer over a small fixed vocabulary (:func:`word_tokenizer`), for models unlike any BPE model.

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


# The 250 most frequent lower-cased words and punctuation runs of the built-in corpus (tokenizers' Whitespace
# pre-tokenizer), frozen here so that the vocabulary never depends on the Python version the corpus comes from.
WORDS = (
    '.', ',', '(', 'the', '=', '"', ':', 'self', ')', 'a', 'is', 'if', '#', 'in', "'", 'to', 'of', '):', 'and', '*',
    'return', 'for', '-', 'def', 'not', '|', '0', '1', '[', '"""', 'none', 'be', 's', 'or', 'as', 'that', 'value',
    'are', 'an', ']', 'object', 'class', '()', 'it', 'this', 'with', 'name', '+', "',", 'x', 'by', 'raise', '%',
    'from', 'n', 'b', 'i', '2', 'else', "('", 'r', 'other', '==', 'type', '/', '",', 'true', '()"', 'string', '3',
    'function', 'data', ').', 'key', 'can', '>>>', 'method', 'default', 'file', 'list', 'f', 'cls', '))', 'false',
    'except', 't', 'will', 'line', 'when', "')", 'on', '<', 'action', 'try', 'used', '),', 'all', 'args',
    'exception', 'import', 'module', 'len', 'argument', 'at', 'only', 'end', 'elif', 'one', 'number', ';', 'which',
    'd', 'section', 'values', '**', 'same', 'y', 'result', '>', 'instance', 'statement', 'no', 'int', 'see', '("',
    'set', 'arguments', 'any', '@', 'we', 'valueerror', 'append', 'should', '".', 'address', 'must', 'c', 'objects',
    'first', '4', 'may', 'sequence', 'context', 'also', 'but', 'use', 'k', 'attribute', '’', '\\', '`', 'have',
    'str', 'defined', 'python', 'names', 'isinstance', 'called', 'text', 'types', 'typeerror', 'version', 'so',
    'returns', 'format', 'option', '5', 'items', 'lines', 'yield', 'new', '__init__', 'code', 'match', 'expression',
    'range', '")', '::=', 'methods', 'its', 'namespace', 'bytes', 'write', 'filename', 'tuple', 'given', 'e', '...',
    'j', "':", 'using', 'there', '!=', 'pattern', 'group', 'path', '."""', 'item', 'note', 'has', 'case', 'g',
    'while', 're', 'than', 'obj', 'dictionary', '+=', 'get', 'empty', '8', 'two', 'they', 'mode', '--', 'block',
    'start', 'os', 'then', 'width', 'join', 'read', '])', 'property', 'order', 'was', 'print', '<=', 'example',
    'help', 'pass', 'encoding', 'more', 'base', 'call', '{', 'msg', 'current', 'time', 'into', 'each', '[]',
    'indent', 'func', "['", 'built', 'integer', 'sys', 'kwargs', 'add',
)
WORD_SPECIALS = ("[UNK]", "<|endoftext|>")  # ids 0 and 1; every other word is UNK


def word_tokenizer() -> Any:
    """A word-level tokenizer: lower-cased, split on whitespace and punctuation runs, 252 ids (``[UNK]``,
    ``<|endoftext|>``, then :data:`WORDS`); decoding joins words with spaces. Built without any files."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate((*WORD_SPECIALS, *WORDS))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>")


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


def tiny_gemma3_hf(*, seed: int = 0) -> Any:
    """A random Gemma 3 in miniature: 3 layers (two with a sliding window of 4 positions, one global), 4 query heads
    sharing 1 key/value head, QK-norm, norms before and after attention and the MLP, tied embeddings.

    Gemma initialises every norm weight to 0 (an effective weight of 1); here they are drawn at random, so that a
    test that forgets a post-norm's weight or its scale fails.
    """
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    cfg = Gemma3TextConfig(num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                           hidden_size=48, intermediate_size=96, vocab_size=BYTE_VOCAB, max_position_embeddings=128,
                           sliding_window=4, layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                           query_pre_attn_scalar=16, initializer_range=0.2, bos_token_id=256, eos_token_id=256,
                           pad_token_id=256)
    cfg.architectures = ["Gemma3ForCausalLM"]
    model = Gemma3ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.normal_(0.0, 0.5)
    return model
