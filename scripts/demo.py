#!/usr/bin/env python3
"""`make demo`: quantize SmolLM2-135M with AWQ and RTN and compare with the fp32 model.

Runs only the `awq` binary (standard library Python for orchestration and the table).
Evaluation: perplexity on data/eval/wikitext2-test-slice.txt (WikiText-2 test, first 3
articles), protocol autoawq, ctx 1024 (see docs/EVAL.md).
"""
import json, os, struct, subprocess, sys, time

AWQ = os.environ.get("AWQ_BIN", "build/awq")
FP = os.environ.get("AWQ_FP_DIR", "models/smollm2-fp32")
OUT = "out/demo"
EVAL = "data/eval/wikitext2-test-slice.txt"
CTX = int(os.environ.get("AWQ_DEMO_CTX", "1024"))
PROMPT = "The history of the Roman Empire"
GEN_TOKENS = 40
GROUP = "64"  # SmolLM2's hidden size 576 is not a multiple of 128 (see README)
# The scale grid is scored on 16 of the ~80 calibration blocks (statistics use all of them):
# ~15 min instead of ~45 min on a 2-core machine. docs/RESULTS.md has the numbers.
SEARCH_BLOCKS = os.environ.get("AWQ_DEMO_SEARCH_BLOCKS", "16")


def run(args, capture=True):
    print("$ " + " ".join(args), file=sys.stderr, flush=True)
    r = subprocess.run(args, stdout=subprocess.PIPE if capture else None, text=True)
    if r.returncode != 0:
        sys.exit(f"demo: command failed ({r.returncode}): {' '.join(args)}")
    return r.stdout


def safetensors_stats(d):
    """(bytes on disk of *.safetensors, bits per quantized weight or None)."""
    total, qbytes, qparams = 0, 0, 0
    for f in sorted(os.listdir(d)):
        if not f.endswith(".safetensors"):
            continue
        p = os.path.join(d, f)
        total += os.path.getsize(p)
        with open(p, "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            hdr = json.loads(fh.read(n))
        for name, t in hdr.items():
            if name == "__metadata__":
                continue
            nbytes = t["data_offsets"][1] - t["data_offsets"][0]
            if name.endswith((".qweight", ".qzeros", ".scales")):
                qbytes += nbytes
            if name.endswith(".qweight"):
                qparams += t["shape"][0] * t["shape"][1] * 8
    return total, (8.0 * qbytes / qparams if qparams else None)


def quantize(method, out):
    if os.path.exists(os.path.join(out, "config.json")):
        meta = os.path.join(out, "demo_time.json")
        return json.load(open(meta))["seconds"] if os.path.exists(meta) else float("nan")
    t0 = time.time()
    extra = ["--search-blocks", SEARCH_BLOCKS] if method == "awq" else []
    run([AWQ, "quantize", FP, out, "--method", method, "--w-bit", "4", "--group-size", GROUP,
         "--overwrite"] + extra, capture=False)
    sec = time.time() - t0
    json.dump({"seconds": sec}, open(os.path.join(out, "demo_time.json"), "w"))
    return sec


def main():
    os.makedirs(OUT, exist_ok=True)
    rows = [("FP32", FP, None)]
    rows.append(("RTN W4 g64", f"{OUT}/smollm2-rtn-w4g64", quantize("rtn", f"{OUT}/smollm2-rtn-w4g64")))
    rows.append(("AWQ W4 g64", f"{OUT}/smollm2-awq-w4g64", quantize("awq", f"{OUT}/smollm2-awq-w4g64")))
    results = []
    for name, d, qtime in rows:
        ppl = json.loads(run([AWQ, "ppl", d, EVAL, "--ctx", str(CTX), "--json"]))
        gen = run([AWQ, "generate", d, "-p", PROMPT, "-n", str(GEN_TOKENS), "--temperature", "0"])
        size, bpw = safetensors_stats(d)
        results.append((name, ppl, size, bpw, qtime, gen.strip().replace("\n", " ")))
    fp_ppl = results[0][1]["ppl"]
    print()
    print(f"SmolLM2-135M-Instruct; perplexity on {EVAL} (WikiText-2 test, first 3 articles), "
          f"protocol {results[0][1]['protocol']}, ctx {CTX}, {results[0][1]['tokens_scored']} "
          "tokens scored")
    print()
    print("| model | PPL | dPPL | size on disk | bits/weight (linears) | quantize time |")
    print("|---|---|---|---|---|---|")
    for name, ppl, size, bpw, qtime, _ in results:
        print(f"| {name} | {ppl['ppl']:.3f} ± {ppl['ppl_stderr']:.3f} | {ppl['ppl'] - fp_ppl:+.3f} "
              f"| {size / 1e6:.1f} MB | {'32 (fp32)' if bpw is None else f'{bpw:.2f}'} "
              f"| {'-' if qtime is None else f'{qtime:.0f} s'} |")
    print()
    print(f"Greedy continuation of {PROMPT!r} ({GEN_TOKENS} tokens):")
    for name, *_, gen in results:
        print(f"  [{name}] {gen}")


if __name__ == "__main__":
    main()
