#!/usr/bin/env python3
"""Makes tokenizer golden files with Hugging Face `tokenizers`, an
implementation independent of ours and of llama.cpp's:

  tests/golden/tokenizer_corpus.json     a varied corpus (committed input)
  tests/golden/smollm2_tokens.json       the default model's vocabulary and
      merges (read from its GGUF with the `gguf` package), loaded into HF
      tokenizers with SmolLM2's pre-tokenizer (individual digits, then
      byte-level), encoding the corpus
  tests/golden/hf_tiny_bpe/tokenizer.json + hf_tiny_bpe_tokens.json
      a small byte-level BPE trained by HF tokenizers with Llama 3's split
      regex, saved as tokenizer.json, and its encodings of the corpus
  tests/golden/spm_tiny/tokenizer.model + spm_tiny_tokens.json
      a small Llama-2-style SentencePiece BPE (byte fallback, dummy prefix)
      trained by the `sentencepiece` package, and its encodings

Usage: scripts/make_tokenizer_golden.py MODEL.gguf
  (needs: pip install gguf==0.19.0 tokenizers==0.23.3 sentencepiece numpy)
"""
import json
import os
import sys

import gguf
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from tokenizers.processors import TemplateProcessing

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "tests", "golden")

CORPUS = [
    "",
    " ",
    "Hello world",
    " Hello world",
    "Hello, world! How's it going? I'd've thought we'LL see.",
    "The year 2024 had 366 days; pi is 3.14159265358979.",
    "1234567890 12 345 6789 0",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < 10; ++i) { printf(\"%d\\n\", i); }",
    "   leading and trailing spaces   ",
    "tabs\tand\t\tnewlines\n\n\nand\r\nwindows line ends",
    "Ünïcödé àccénts: café, naïve, façade, Zürich, Ærøskøbing",
    "Русский текст: Съешь же ещё этих мягких французских булок.",
    "中文文本：我爱自然语言处理。日本語のテキスト、カタカナとひらがな。",
    "한국어 문장입니다. 안녕하세요!",
    "العربية: مرحبا بالعالم",
    "Emoji 🦙🚀👍🏽 and flags 🇫🇷 and ZWJ 👩‍👩‍👧‍👦",
    "Math: ∑_{i=1}^{n} x_i² ≤ ∞, √2 ≈ 1.414",
    "URLs like https://example.com/path?q=1&r=two#frag and emails a.b@c.de",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|> is a special token text",
    "    indented\n        more indented\n",
    "!!!??? ... --- ___ *** ### @@@",
    "MixedCASE camelCase snake_case SCREAMING_CASE kebab-case",
    "a" * 100,
    "The quick brown fox jumps over the lazy dog. " * 5,
    "\u00a0non-breaking\u00a0spaces\u2003em\u2003space\u3000ideographic",
    "zero\u200bwidth\u200bspace and combining e\u0301 marks",
]


def smollm2_from_gguf(path):
    r = gguf.GGUFReader(path)
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    merges = r.fields["tokenizer.ggml.merges"].contents()
    types = r.fields["tokenizer.ggml.token_type"].contents()
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges]))
    # SmolLM2's tokenizer.json: Digits(individual) then ByteLevel(regex).
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([t for t, ty in zip(tokens, types) if ty == 3])
    return tok


def tiny_llama3_bpe():
    llama3_split = (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
        r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(llama3_split), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<|begin_of_text|>", "<|end_of_text|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 3, trainer)
    tok.post_processor = TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", 0)])
    return tok


def tiny_spm(folder):
    import io
    import sentencepiece as spm
    model = io.BytesIO()
    # Llama 2's settings: BPE, byte fallback, digits split, dummy prefix.
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS[1:] * 4), model_writer=model,
        vocab_size=600, model_type="bpe", byte_fallback=True,
        split_digits=True, add_dummy_prefix=True, character_coverage=0.98,
        normalization_rule_name="identity", remove_extra_whitespaces=False,
        bos_id=1, eos_id=2, unk_id=0, minloglevel=2)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "tokenizer.model"), "wb") as f:
        f.write(model.getvalue())
    return spm.SentencePieceProcessor(model_proto=model.getvalue())


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(os.path.join(GOLDEN, "tokenizer_corpus.json"), "w") as f:
        json.dump(CORPUS, f, ensure_ascii=False, indent=0)
    smol = smollm2_from_gguf(sys.argv[1])
    with open(os.path.join(GOLDEN, "smollm2_tokens.json"), "w") as f:
        json.dump([smol.encode(t, add_special_tokens=False).ids for t in CORPUS], f)
    tiny = tiny_llama3_bpe()
    os.makedirs(os.path.join(GOLDEN, "hf_tiny_bpe"), exist_ok=True)
    tiny.save(os.path.join(GOLDEN, "hf_tiny_bpe", "tokenizer.json"))
    with open(os.path.join(GOLDEN, "hf_tiny_bpe_tokens.json"), "w") as f:
        json.dump({
            "plain": [tiny.encode(t, add_special_tokens=False).ids for t in CORPUS],
            "with_bos": [tiny.encode(t, add_special_tokens=True).ids for t in CORPUS],
        }, f)
    sp = tiny_spm(os.path.join(GOLDEN, "spm_tiny"))
    with open(os.path.join(GOLDEN, "spm_tiny_tokens.json"), "w") as f:
        json.dump([sp.encode(t) for t in CORPUS], f)
    print("wrote tokenizer goldens")


if __name__ == "__main__":
    main()
