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

Usage: gen_gguf_arch_fixtures.py [--llama-cpp DIR] [OUT_DIR [FAMILY ...]]
  DIR: a llama.cpp source tree (default: the llama-cpp-python sdist is downloaded with pip into
       a temporary directory); OUT_DIR default tests/fixtures/model/gguf.
Writes OUT_DIR/tiny_<family>.gguf.
"""
import argparse, glob, json, os, shutil, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LLAMA_CPP_PYTHON = "0.3.36"  # scripts/bench_llamacpp.sh builds the same version
FAMILIES = ["qwen3", "gemma3", "gemma2", "mistral", "phi3", "mixtral", "qwen3_moe"]


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp")
    ap.add_argument("out", nargs="?", default=os.path.join(ROOT, "tests/fixtures/model/gguf"))
    ap.add_argument("families", nargs="*")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        llama_cpp = a.llama_cpp or llama_cpp_tree(tmp)
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
