#!/usr/bin/env python3
"""Greedy completions of `awq serve --kv-dtype f32` vs `--kv-dtype f16` (not a test).

Starts each server in turn on a loopback port, sends the first N paragraphs of the WikiText-2
slice (as scripts/bench_serve.py cuts them) as greedy /v1/completions with logprobs, and prints
how many completions are token-identical and where each first diverges.

Usage: scripts/compare_kv_dtype.py MODEL [--n 16] [--max-tokens 128] [--awq build/awq]
"""
import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_serve import free_port, load_prompts  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def completions(awq, model, dtype, prompts, max_tokens):
    port = free_port()
    p = subprocess.Popen([awq, "serve", model, "--port", str(port), "--threads", "2", "--kv-dtype", dtype],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except Exception:
                time.sleep(0.2)
        outs = []
        for pr in prompts:
            body = {"prompt": pr, "max_tokens": max_tokens, "temperature": 0, "logprobs": 1}
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions",
                                         data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            r = json.load(urllib.request.urlopen(req, timeout=300))
            outs.append(r["choices"][0]["logprobs"]["tokens"])
        return outs
    finally:
        p.terminate()
        p.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--awq", default=os.path.join(ROOT, "build", "awq"))
    a = ap.parse_args()
    prompts = load_prompts(os.path.join(ROOT, "data/eval/wikitext2-test-slice.txt"))[:a.n]
    f32 = completions(a.awq, a.model, "f32", prompts, a.max_tokens)
    f16 = completions(a.awq, a.model, "f16", prompts, a.max_tokens)
    div = [next((i for i, (u, v) in enumerate(zip(x, y)) if u != v), min(len(x), len(y)))
           for x, y in zip(f32, f16)]
    same = sum(x == y for x, y in zip(f32, f16))
    print(f"identical greedy completions: {same}/{len(prompts)}; first divergence per prompt: {div}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
