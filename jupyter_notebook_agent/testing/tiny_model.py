"""A tiny random-weight llama GGUF, written on the spot: the llama.cpp backend's test subject.

Its text is gibberish, but it loads in milliseconds, exercises the whole llama.cpp path (chat
template, tokenizer, sampling, grammar, KV cache, GPU offload) and needs no weights from outside.
The tests, the benchmark and `doctor` all use it. The vocabulary is byte-level BPE (every byte a
token, so any text round-trips) plus the chatml special tokens.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""ChatML, written into the file as its own template."""
QUOTE_BIAS = 0.06
"""The closing quote's weight on the constant dimension (see below)."""


def byte_level_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for the bytes 0..255, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    extra = iter(range(256, 512))
    return [chr(byte) if byte in printable else chr(next(extra)) for byte in range(256)]


def write_tiny_gguf(
    path: Path,
    *,
    layers: int = 2,
    embedding: int = 64,
    heads: int = 4,
    feed_forward: int = 128,
    context: int = 8192,
    seed: int = 0,
    chat_template: str | None = CHATML_TEMPLATE,
) -> Path:
    """Writes a llama of random weights (f32) to `path`; the defaults make about 0.5 MB. With
    `chat_template` None, the file has none (as some published GGUFs do not)."""
    import gguf
    import numpy as np

    alphabet = byte_level_alphabet()
    space = alphabet[ord(" ")]
    # One merge (two spaces into one token): the BPE loader wants a merge list.
    tokens = [*alphabet, space * 2, *SPECIAL_TOKENS]
    types = [gguf.TokenType.NORMAL] * (len(alphabet) + 1) + [gguf.TokenType.CONTROL] * 3
    vocab = len(tokens)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny random llama")
    writer.add_context_length(context)
    writer.add_embedding_length(embedding)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(feed_forward)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_rope_dimension_count(embedding // heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(vocab)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([f"{space} {space}"])
    writer.add_bos_token_id(tokens.index("<|endoftext|>"))
    writer.add_eos_token_id(tokens.index("<|im_end|>"))
    writer.add_add_bos_token(False)
    if chat_template is not None:
        writer.add_chat_template(chat_template)

    rng = np.random.default_rng(seed)

    def weights(*shape: int) -> np.ndarray:
        return rng.normal(0.0, 0.02, size=shape).astype(np.float32)

    # A constant first dimension in every embedding carries through the small random layers, so
    # the output's first column acts as a per-token bias: the closing quote gets a little more,
    # and strings end within a hundred tokens or so instead of thousands (at the default size).
    embeddings = weights(vocab, embedding)
    embeddings[:, 0] = 0.2
    output = weights(vocab, embedding)
    output[tokens.index(alphabet[ord('"')]), 0] = QUOTE_BIAS
    ones = np.ones(embedding, dtype=np.float32)
    writer.add_tensor("token_embd.weight", embeddings)
    for layer in range(layers):
        block = f"blk.{layer}"
        writer.add_tensor(f"{block}.attn_norm.weight", ones)
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{block}.{name}.weight", weights(embedding, embedding))
        writer.add_tensor(f"{block}.ffn_norm.weight", ones)
        writer.add_tensor(f"{block}.ffn_gate.weight", weights(feed_forward, embedding))
        writer.add_tensor(f"{block}.ffn_up.weight", weights(feed_forward, embedding))
        writer.add_tensor(f"{block}.ffn_down.weight", weights(embedding, feed_forward))
    writer.add_tensor("output_norm.weight", ones)
    writer.add_tensor("output.weight", output)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
