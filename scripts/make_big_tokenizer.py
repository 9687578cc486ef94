#!/usr/bin/env python3
"""Write a Gemma-3-sized tokenizer.json (262,144 tokens, ~250k merges, 6,000+ added tokens) for
the tokenizer load-time benchmark (docs/RESULTS.md). Structure of Gemma 3's file: BPE with
byte_fallback, SentencePiece-style normalizer (spaces -> U+2581), byte tokens <0x00>..<0xFF>,
thousands of added <unusedN> / special tokens. Random pieces; not a usable tokenizer.

Usage: make_big_tokenizer.py OUT_DIR [--vocab 262144] [--added 6242] [--seed 0]
"""
import argparse, json, os, random

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--vocab", type=int, default=262144)
ap.add_argument("--added", type=int, default=6242)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
rng = random.Random(a.seed)

vocab, merges, added = {}, [], []
def add(tok):
    if tok in vocab:
        return False
    vocab[tok] = len(vocab)
    return True

specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "[@BOS@]", "<start_of_turn>", "<end_of_turn>"]
specials += [f"<unused{i}>" for i in range(a.added - len(specials))]
for s in specials:
    add(s)
    added.append({"id": vocab[s], "content": s, "single_word": False, "lstrip": False,
                  "rstrip": False, "normalized": False, "special": True})
for b in range(256):
    add(f"<0x{b:02X}>")
# Base symbols: ASCII, U+2581, Latin-1, Cyrillic, Greek, CJK (Gemma's vocab is multilingual).
base = [chr(c) for c in range(33, 127)] + ["\u2581"] + [chr(c) for c in range(0xC0, 0x180)]
base += [chr(c) for c in range(0x391, 0x3CA)] + [chr(c) for c in range(0x410, 0x450)]
base += [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
for ch in base:
    add(ch)
pieces = list(base)
while len(vocab) < a.vocab:
    # a new token = two existing pieces (short ones more often), as BPE training makes them
    x = pieces[min(int(rng.expovariate(1 / 3000)), len(pieces) - 1)]
    y = pieces[rng.randrange(len(pieces))]
    if len(x) + len(y) > 16:
        continue
    if add(x + y):
        merges.append([x, y])
        pieces.append(x + y)

tok = {
    "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
    "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
    "pre_tokenizer": None,
    "post_processor": {"type": "TemplateProcessing",
                       "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}},
                                  {"Sequence": {"id": "A", "type_id": 0}}],
                       "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                                {"Sequence": {"id": "B", "type_id": 1}}],
                       "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]}}},
    "decoder": {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"}]},
    "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
              "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": True,
              "byte_fallback": True, "ignore_merges": False, "vocab": vocab, "merges": merges},
}
os.makedirs(a.out, exist_ok=True)
with open(os.path.join(a.out, "tokenizer.json"), "w", encoding="utf-8") as f:
    json.dump(tok, f, ensure_ascii=False)
print(f"{a.out}/tokenizer.json: {len(vocab)} tokens, {len(merges)} merges, {len(added)} added")
