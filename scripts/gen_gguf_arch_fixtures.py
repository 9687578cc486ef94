#!/usr/bin/env python3
"""GGUF files of the tiny family fixtures, written by llama.cpp's own converter.

Users bring GGUF files that llama.cpp's `convert_hf_to_gguf.py` wrote, so the fixtures for
`awq convert`'s GGUF input are made by that script (from the llama-cpp-python sdist, which
vendors llama.cpp) from tests/fixtures/model/tiny_<family>/, F16 (the fixtures' weights are fp16
values, so nothing is rounded; llama.cpp keeps 1-D tensors F32). The tests convert them back and
compare tensors and logits with the HF fixture they came from.

One substitution, and only for the vocabulary: the fixtures share the tiny byte-level BPE
tokenizer tests/fixtures/tokenizer/tiny_llama3 (704 tokens), which is not one of the tokenizers
llama.cpp recognises by hash, and Gemma 2 / Phi-3 ask for a SentencePiece tokenizer.model. Every
family's vocabulary is therefore written the way llama.cpp writes a byte-level BPE one
(`_set_vocab_gpt2`, pre-tokenizer "llama-bpe", which is what that tokenizer is). Tensor names,
shapes, the q/k permutation, fused tensors, expert stacking and all architecture metadata are
llama.cpp's own code, unchanged.

SentencePiece vocabularies (`--spm`): real Mistral, Mixtral, Llama 2 and Phi-3 GGUFs carry
one ("llama" tokenizer model, no merges, scores). A 704-piece SentencePiece BPE model with byte
fallback is trained (sentencepiece, on data/calib/default.jsonl) and llama.cpp's converter, this
time unchanged, writes vocabulary-only GGUFs from it: tests/fixtures/tokenizer/gguf_spm/
{llama,phi3}.gguf (the tiny Mistral and Phi-3 configs), with cases.json: the ids and decodes of
Transformers' own GGUF tokenizer (AutoTokenizer.from_pretrained(gguf_file=...)) on the tokenizer
fixtures' hard and random cases (scripts/gen_tokenizer_fixtures.py).

Usage: gen_gguf_arch_fixtures.py [--llama-cpp DIR] [--spm] [OUT_DIR [FAMILY ...]]
  DIR: a llama.cpp source tree (default: the llama-cpp-python sdist is downloaded with pip into
       a temporary directory); OUT_DIR default tests/fixtures/model/gguf.
Writes OUT_DIR/tiny_<family>.gguf (or, with --spm, the SentencePiece fixtures).
"""
import argparse, glob, json, os, shutil, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LLAMA_CPP_PYTHON = "0.3.36"  # scripts/bench_llamacpp.sh builds the same version
FAMILIES = ["qwen3", "gemma3", "gemma2", "mistral", "phi3", "mixtral", "qwen3_moe", "qwen2_moe",
            "qwen3_yarn", "llama3_rope"]


def llama_cpp_tree(tmp):
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "-d", tmp], check=True)
    subprocess.run(["tar", "xzf", glob.glob(os.path.join(tmp, "llama_cpp_python-*.tar.gz"))[0],
                    "-C", tmp], check=True)
    return glob.glob(os.path.join(tmp, "llama_cpp_python-*", "vendor", "llama.cpp"))[0]


def convert(llama_cpp, src, out):
    # Run in a child so that each family gets a fresh import of the converter.
    code = f"""
import sys
sys.path[:0] = [{llama_cpp!r}, {os.path.join(llama_cpp, 'gguf-py')!r}]
sys.argv = ['convert_hf_to_gguf.py', {src!r}, '--outtype', 'f16', '--outfile', {out!r}]
import convert_hf_to_gguf as c
orig = c.get_model_class
def get_model_class(*a, **k):
    cls = orig(*a, **k)
    # the vocabulary substitution (module docstring); nothing else
    cls.set_vocab = lambda self: self._set_vocab_gpt2()
    cls.get_vocab_base_pre = lambda self, tokenizer: "llama-bpe"
    return cls
c.get_model_class = get_model_class
c.main()
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=llama_cpp)


def spm_fixtures(llama_cpp, tmp):
    import sentencepiece as spm
    from transformers import AutoTokenizer
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from gen_tokenizer_fixtures import HARD_CASES, random_cases
    out = os.path.join(ROOT, "tests/fixtures/tokenizer/gguf_spm")
    os.makedirs(out, exist_ok=True)
    train = os.path.join(tmp, "train.txt")
    with open(os.path.join(ROOT, "data/calib/default.jsonl"), encoding="utf-8") as f, \
            open(train, "w", encoding="utf-8") as t:
        for line in list(f)[:40]:
            t.write(json.loads(line)["text"] + "\n")
    spm.SentencePieceTrainer.train(
        input=train, model_prefix=os.path.join(tmp, "spm"), vocab_size=704, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        split_digits=True, allow_whitespace_only_pieces=True, remove_extra_whitespaces=False,
        normalization_rule_name="identity", num_threads=1, minloglevel=2)
    for name, fam in (("llama", "mistral"), ("phi3", "phi3")):
        src = os.path.join(tmp, "spm_" + fam)
        shutil.copytree(os.path.join(ROOT, "tests/fixtures/model", "tiny_" + fam), src)
        os.remove(os.path.join(src, "logits.safetensors"))
        shutil.copy(os.path.join(tmp, "spm.model"), os.path.join(src, "tokenizer.model"))
        with open(os.path.join(src, "tokenizer_config.json"), "w") as f:
            json.dump({"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
                       "unk_token": "<unk>", "add_bos_token": True}, f)
        gguf = os.path.join(out, name + ".gguf")
        subprocess.run([sys.executable, "convert_hf_to_gguf.py", src, "--vocab-only",
                        "--outfile", gguf], check=True, cwd=llama_cpp,
                       env=dict(os.environ, PYTHONPATH=os.path.join(llama_cpp, "gguf-py")))
        tok = AutoTokenizer.from_pretrained(out, gguf_file=name + ".gguf").backend_tokenizer
        cases = []
        for text in HARD_CASES + random_cases():
            ids = tok.encode(text, add_special_tokens=True).ids
            cases.append({"text": text, "ids": ids,
                          "ids_no_special": tok.encode(text, add_special_tokens=False).ids,
                          "decode": tok.decode(ids, skip_special_tokens=False),
                          "decode_skip_special": tok.decode(ids, skip_special_tokens=True)})
        with open(os.path.join(out, name + ".cases.json"), "w", encoding="utf-8") as f:
            json.dump({"generator": "scripts/gen_gguf_arch_fixtures.py --spm",
                       "transformers_version": __import__("transformers").__version__,
                       "cases": cases}, f, ensure_ascii=False, indent=1)
            f.write("\n")
        print("wrote", gguf)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp")
    ap.add_argument("--spm", action="store_true")
    ap.add_argument("out", nargs="?", default=os.path.join(ROOT, "tests/fixtures/model/gguf"))
    ap.add_argument("families", nargs="*")
    a = ap.parse_args()
    a.out = os.path.abspath(a.out)  # the converter runs in the llama.cpp tree
    os.makedirs(a.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        llama_cpp = a.llama_cpp or llama_cpp_tree(tmp)
        if a.spm:
            return spm_fixtures(llama_cpp, tmp)
        tok = os.path.join(ROOT, "tests/fixtures/tokenizer/tiny_llama3/tokenizer.json")
        for fam in a.families or FAMILIES:
            src = os.path.join(tmp, "hf_" + fam)
            shutil.copytree(os.path.join(ROOT, "tests/fixtures/model", "tiny_" + fam), src)
            os.remove(os.path.join(src, "logits.safetensors"))
            shutil.copy(tok, src)
            # Without this, AutoTokenizer picks the family's own class (Qwen2Tokenizer adds a
            # 705th token); the fixture tokenizer is a plain fast tokenizer.
            with open(os.path.join(src, "tokenizer_config.json"), "w") as f:
                json.dump({"tokenizer_class": "PreTrainedTokenizerFast",
                           "bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}, f)
            out = os.path.join(a.out, f"tiny_{fam}.gguf")
            convert(llama_cpp, src, out)
            print("wrote", out)


if __name__ == "__main__":
    main()
