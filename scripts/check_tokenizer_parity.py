#!/usr/bin/env python3
"""Tokenizer parity: `awq tokenize` against HF's own tokenizer on a whole text file.

    python3 scripts/check_tokenizer_parity.py AWQ_BIN MODEL_DIR REF TEXT_FILE

REF: a .gguf file (the tokenizer Transformers builds from the GGUF metadata itself, so our
tokenizer.json writer is checked too) or an HF directory (its tokenizer.json via AutoTokenizer).
The text is read byte-exact (CRLF kept), encoded whole with special tokens (BOS) as both sides
do. Also checks a list of hard strings. Prints the first mismatch and exits 1 on any.
"""
import json
import os
import subprocess
import sys
import tempfile

from transformers import AutoTokenizer

HARD = [
    "", " ", "  ", "\n", "\r\n", "\t\t x", "Hello, world!", "  leading spaces and trailing   ",
    "naïve café — Ünïcödé, 日本語のテキスト, emoji 🤗🚀 \U0001F9D1\u200D\U0001F4BB",
    "def f(x):\n\treturn x**2  # comment\n\n\n", "I'm sure they'll've done it; we'd DONE it's",
    "1234567890 3.14159 1e-9 0x7fff", "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
    "\u00a0non-breaking\u3000ideographic space", "a" * 300, "\x00\x01\x7f control", "ﬁ ligature Ⅻ",
]


def ours(awq, model, text_bytes):
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(text_bytes)
    try:
        out = subprocess.run([awq, "tokenize", model, f.name, "--json"], check=True,
                             capture_output=True).stdout
    finally:
        os.unlink(f.name)
    return json.loads(out)["ids"]


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b)) if len(a) != len(b) else -1


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    awq, model, ref, text = sys.argv[1:]
    if ref.endswith(".gguf"):
        tok = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(ref)),
                                            gguf_file=os.path.basename(ref))
    else:
        tok = AutoTokenizer.from_pretrained(ref)
    data = open(text, "rb").read()
    cases = [(text, data)] + [(repr(s)[:40], s.encode()) for s in HARD]
    bad = 0
    for name, b in cases:
        mine = ours(awq, model, b)
        theirs = tok(b.decode("utf-8"), add_special_tokens=True)["input_ids"]
        i = first_diff(mine, theirs)
        if i >= 0:
            bad += 1
            print(f"MISMATCH {name}: at token {i}: ours {mine[max(0, i - 3):i + 5]} "
                  f"hf {theirs[max(0, i - 3):i + 5]} (lengths {len(mine)} / {len(theirs)})")
        else:
            print(f"ok {name}: {len(mine)} tokens")
    print(f"{len(cases) - bad}/{len(cases)} identical")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
