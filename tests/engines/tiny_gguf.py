"""A tiny random-weight llama-architecture GGUF, written at test time for a real llama.cpp server.

The vocabulary is SentencePiece-style: ``<unk>``, ``<s>``, ``</s>``, the 256 byte tokens, ``▁w``,
then one word ``▁w<i>`` per id below ``WORDS`` (every prefix of ``▁w<i>`` is in the vocabulary,
which SentencePiece's bigram merging needs), so ``glia bench --text-prompts`` (word ``w<id>`` per
token id) tokenizes to one token per word. Weights are small seeded normals except one residual
dimension held large and positive, through which the output head pushes every non-word token's
logit far down: the model babbles words only (no end-of-text, no partial UTF-8 bytes), so each
streamed chunk is one token and ``max_tokens`` alone ends a request.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

WORDS = 1000  # glia bench's default --vocab: its prompt ids are all words here
SPECIAL = 3 + 256 + 1  # <unk> <s> </s>, bytes, and the bare "▁w" prefix
VOCAB = SPECIAL + WORDS
EMBED = 64
LAYERS = 2
HEADS = 4
FFN = 128
CONTEXT = 1024


def write_tiny_llama(path: Path, seed: int = 0) -> Path:
    """Write the model to ``path`` (needs the ``gguf`` package: the ``engines`` extra)."""
    import gguf  # the optional extra; imported here so collecting the tests never needs it

    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("glia-tiny-llama")
    w.add_context_length(CONTEXT)
    w.add_embedding_length(EMBED)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(HEADS)
    w.add_rope_dimension_count(EMBED // HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256
    tokens += ["\u2581w"] + [f"\u2581w{i}" for i in range(WORDS)]
    types += [gguf.TokenType.NORMAL] * (WORDS + 1)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * VOCAB)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    ones = np.ones(EMBED, dtype=np.float32)
    embd = normal(VOCAB, EMBED)
    embd[:, 0] = 10.0  # dimension 0 stays positive through the small layers (see the head)
    w.add_tensor("token_embd.weight", embd)
    for b in range(LAYERS):
        w.add_tensor(f"blk.{b}.attn_norm.weight", ones)
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(f"blk.{b}.{name}.weight", normal(EMBED, EMBED))
        w.add_tensor(f"blk.{b}.ffn_norm.weight", ones)
        w.add_tensor(f"blk.{b}.ffn_gate.weight", normal(FFN, EMBED))
        w.add_tensor(f"blk.{b}.ffn_up.weight", normal(FFN, EMBED))
        w.add_tensor(f"blk.{b}.ffn_down.weight", normal(EMBED, FFN))
    w.add_tensor("output_norm.weight", ones)
    head = normal(VOCAB, EMBED)
    head[:, 0] = 0.0
    head[:SPECIAL, 0] = -10.0  # normalised dimension 0 is ~8: these logits sit near -80
    w.add_tensor("output.weight", head)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
