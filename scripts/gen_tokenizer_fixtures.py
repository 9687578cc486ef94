#!/usr/bin/env python3
"""Generate the tokenizer test fixtures under tests/fixtures/tokenizer/ with HF `tokenizers`.

Every expected id/string in those files comes from the HF libraries, never from awq-cpp.

  tests/fixtures/tokenizer/
    smollm2/          tokenizer.json (+ tokenizer_config.json, chat_template.jinja) saved by
                      transformers from models/SmolLM2-135M-Instruct.Q4_1.gguf; tokenizer.json is
                      re-serialized without indentation (same content, 1.6 MB instead of 3.5 MB)
    tiny_llama3/      byte-level BPE trained here: Llama-3 Split regex + ByteLevel(use_regex=false),
                      TemplateProcessing BOS, ignore_merges, added tokens with lstrip/rstrip/single_word
    tiny_gpt2digits/  Digits(individual) + ByteLevel(add_prefix_space) + RobertaProcessing,
                      merges in the legacy "a b" string form
    tiny_bytefallback/ Llama-2 style: Prepend/Replace normalizer, BPE with byte_fallback and <unk>,
                      Replace/ByteFallback/Fuse/Strip decoder, TemplateProcessing BOS
    tiny_metaspace/   Metaspace(prepend_scheme=first) pre-tokenizer and decoder, byte_fallback
    <name>/cases.json expected ids (add_special_tokens True/False) and decodes of HARD_CASES
    smollm2/wiki_test_ids.bin   ids of wiki.test.raw as one string: "AWQIDS16" + u32 count +
                      u32 0, then count little-endian uint16 ids
    smollm2/wiki_test_ids.json  {n_ids, text_bytes, text_fnv1a64, ids_fnv1a64}

Usage: python3 scripts/gen_tokenizer_fixtures.py [--wikitext PATH]
Needs: pip install tokenizers transformers gguf
"""
import argparse
import json
import os
import struct
import tempfile

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
GGUF_DIR = os.path.join(ROOT, "models")
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

HARD_CASES = [
    "",
    " ",
    "  ",
    "\n",
    "Hello world",
    " Hello world",
    "Hello world ",
    "hello   world\t\tand\ttabs",
    "line one\nline two\r\nline three\n\n\nend\n",
    "trailing spaces    \n  leading spaces",
    "\t\t\tindented with tabs\n    indented with spaces",
    # Unicode: accents, combining marks, RTL, CJK
    "café naïve résumé Ångström Ærø",
    "e\u0301 a\u0308 n\u0303 (combining marks)",
    "Ελληνικά και русский текст",
    "مرحبا بالعالم",
    "שלום עולם",
    "日本語のテキストと中文文本",
    "한국어 텍스트",
    "ไทย ภาษา",
    # emoji
    "I ❤️ emoji 😀😃😄",
    "👨‍👩‍👧‍👦 family 👍🏽 thumbs 🏳️‍🌈 flag",
    "🤖🤖🤖",
    # code
    "def f(x):\n    return x ** 2  # square\n",
    "int main() {\n\tstd::vector<int> v{1, 2, 3};\n\tfor (auto& x : v) x += 1;\n\treturn 0;\n}\n",
    "if (a != b && c <= d) { y = a->b[0]; }",
    "    \n\n    \t\n",
    # numbers
    "1234567890123456789012345",
    "3.14159 2.71828 -0.5 1e-10 1,000,000",
    "The year 2024 had 365 days.",
    # contractions
    "I'm you're he's she'd we'll they've can't don't",
    "I'M YOU'RE HE'S SHE'D WE'LL THEY'VE CAN'T DON'T",
    "It'S mIxEd'Ll 'd 're",
    # special-token strings
    "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more text",
    "word<|im_start|>word <|im_end|> spaced",
    "<|endoftext|>",
    "<|begin_of_text|>Hi<|eot_id|>",
    "<s>Hello</s> <unk>",
    "a <mask> b<mask>c",
    "hello_world and xhello_world and hello_world!",
    # misc
    "Mixed: Hello, World! ¿Qué tal? — “quotes” ‘single’ … ©®™",
    "\u00a0non-breaking\u2009thin\u3000ideographic spaces",
    "ab\u200bzero\u200cwidth\u200djoiners",
    "x" * 300,
    "The quick brown fox jumps over the lazy dog. " * 3,
]


def random_cases(n=120, seed=1234):
    """Seeded random strings mixing scripts, whitespace, digits, punctuation and added tokens,
    to exercise the added-token flags and regex edges beyond the hand-written cases."""
    import random
    rng = random.Random(seed)
    atoms = ["a", "Z", "é", "e\u0301", "ß", "Ω", "ж", "日", "한", "ع", "😀", "👍🏽", "\u200d", "1", "42",
             "999", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "'s", "'LL", "'t", ".", ",", "!?", "_",
             "-", "(", "]", "{", "#", "$", "<", ">", "|", "<|im_start|>", "<|im_end|>",
             "<|endoftext|>", "<|eot_id|>", "<mask>", "hello_world", " spaced", "<s>", "</s>",
             "the", " the", "The", "ing", "Hello", " world", "\\", "\"", "\x00", "\x7f"]
    out = []
    for _ in range(n):
        out.append("".join(rng.choice(atoms) for _ in range(rng.randint(1, 14))))
    return out


def fnv1a64(data: bytes) -> int:
    h = 0xcbf29ce484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def write_cases(tok: Tokenizer, name: str):
    cases = []
    for text in HARD_CASES + random_cases():
        with_special = tok.encode(text, add_special_tokens=True).ids
        plain = tok.encode(text, add_special_tokens=False).ids
        cases.append({
            "text": text,
            "ids": with_special,
            "ids_no_special": plain,
            "decode": tok.decode(with_special, skip_special_tokens=False),
            "decode_skip_special": tok.decode(with_special, skip_special_tokens=True),
        })
    path = os.path.join(OUT, name, "cases.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"generator": "scripts/gen_tokenizer_fixtures.py",
                   "tokenizers_version": __import__("tokenizers").__version__,
                   "cases": cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")


def save_compact(tok_json_path: str, dst: str):
    with open(tok_json_path, encoding="utf-8") as f:
        data = json.load(f)
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, separators=(",", ":"))


def smollm2(wikitext: str):
    import transformers
    d = os.path.join(OUT, "smollm2")
    os.makedirs(d, exist_ok=True)
    t = transformers.AutoTokenizer.from_pretrained(GGUF_DIR, gguf_file=GGUF_FILE)
    with tempfile.TemporaryDirectory() as tmp:
        t.save_pretrained(tmp)
        save_compact(os.path.join(tmp, "tokenizer.json"), os.path.join(d, "tokenizer.json"))
        for extra in ("tokenizer_config.json", "chat_template.jinja"):
            src = os.path.join(tmp, extra)
            if os.path.exists(src):
                with open(src, "rb") as f, open(os.path.join(d, extra), "wb") as g:
                    g.write(f.read())
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    write_cases(tok, "smollm2")

    if wikitext and os.path.exists(wikitext):
        with open(wikitext, "rb") as f:
            raw = f.read()
        ids = tok.encode(raw.decode("utf-8"), add_special_tokens=False).ids
        assert max(ids) < 65536
        body = struct.pack("<%dH" % len(ids), *ids)
        with open(os.path.join(d, "wiki_test_ids.bin"), "wb") as f:
            f.write(b"AWQIDS16" + struct.pack("<II", len(ids), 0) + body)
        ids32 = struct.pack("<%dI" % len(ids), *ids)
        with open(os.path.join(d, "wiki_test_ids.json"), "w") as f:
            json.dump({"source": "wikitext-2-raw/wiki.test.raw", "add_special_tokens": False,
                       "n_ids": len(ids), "text_bytes": len(raw),
                       "text_fnv1a64": "%016x" % fnv1a64(raw),
                       "ids_fnv1a64": "%016x" % fnv1a64(ids32)}, f, indent=1)
            f.write("\n")
        print("smollm2: wiki.test.raw ->", len(ids), "ids")


def training_text(wikitext: str) -> list:
    # A few KB of deterministic text: the start of wiki.test.raw plus the hard cases.
    lines = []
    if wikitext and os.path.exists(wikitext):
        with open(wikitext, encoding="utf-8") as f:
            lines = f.read(12000).splitlines()
    return lines + HARD_CASES[4:30]


def save_tiny(tok: Tokenizer, name: str):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"), pretty=True)
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    write_cases(tok, name)
    print(name, "vocab", tok.get_vocab_size())


def tiny_llama3(text):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|begin_of_text|>", "<|end_of_text|>"])
    tok.train_from_iterator(text, trainer)
    tok.add_special_tokens(["<|eot_id|>", AddedToken("<mask>", lstrip=True, rstrip=False,
                                                     special=True, normalized=False)])
    tok.add_tokens([AddedToken("hello_world", single_word=True, normalized=False),
                    AddedToken(" spaced", rstrip=True, normalized=False)])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    save_tiny(tok, "tiny_llama3")


def tiny_gpt2digits(text):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<s>", "</s>", "<pad>"])
    tok.train_from_iterator(text, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                      ("<s>", tok.token_to_id("<s>")))
    d = os.path.join(OUT, "tiny_gpt2digits")
    os.makedirs(d, exist_ok=True)
    # Legacy merges form: "a b" strings instead of [a, b] pairs.
    data = json.loads(tok.to_str())
    data["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m
                               for m in data["model"]["merges"]]
    save_tiny(Tokenizer.from_str(json.dumps(data)), "tiny_gpt2digits")


def ascii_only(text):
    # Train the byte-fallback models on ASCII only, so every other character falls back to
    # <0xNN> tokens (deterministic, unlike the trainer's limit_alphabet tie-breaking).
    return [line.encode("ascii", "ignore").decode() for line in text]


def with_byte_tokens(tok: Tokenizer) -> Tokenizer:
    # Append <0x00>..<0xFF> to the model vocab (as in Llama-2), not as added tokens.
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    n = max(vocab.values()) + 1
    for b in range(256):
        name = "<0x%02X>" % b
        if name not in vocab:
            vocab[name] = n
            n += 1
    data["model"]["byte_fallback"] = True
    return Tokenizer.from_str(json.dumps(data))


def tiny_bytefallback(text):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trainer = trainers.BpeTrainer(vocab_size=500, show_progress=False,
                                  special_tokens=["<unk>", "<s>", "</s>"])
    tok.train_from_iterator(ascii_only(text), trainer)
    tok = with_byte_tokens(tok)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    save_tiny(tok, "tiny_bytefallback")


def tiny_metaspace(text):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=500, show_progress=False,
                                  special_tokens=["<unk>", "<s>", "</s>"])
    tok.train_from_iterator(ascii_only(text), trainer)
    tok = with_byte_tokens(tok)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Sequence([decoders.Metaspace(replacement="▁", prepend_scheme="first"),
                                     decoders.ByteFallback(), decoders.Fuse()])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", tok.token_to_id("<s>")),
                                              ("</s>", tok.token_to_id("</s>"))])
    save_tiny(tok, "tiny_metaspace")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wikitext", default="/work/shared/data/wikitext-2-raw/wiki.test.raw")
    ap.add_argument("--skip-smollm2", action="store_true")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    text = training_text(args.wikitext)
    tiny_llama3(text)
    tiny_gpt2digits(text)
    tiny_bytefallback(text)
    tiny_metaspace(text)
    if not args.skip_smollm2:
        smollm2(args.wikitext)


if __name__ == "__main__":
    main()
