#!/usr/bin/env python3
"""`awq ppl` on a checkpoint written by another tool equals the perplexity its own PyTorch loader
(HF Transformers, scripts/hf_ppl.py) gives on the same windows and protocol.

Usage: check_foreign_ppl.py AWQ_BIN MODEL_DIR TEXT [--ctx 2048] [--protocol autoawq]
                            [--max-windows N] [--rel-tol 1e-4] [--ct-decompress]
Prints both numbers as one JSON line; exit 1 when |ours - theirs| / theirs > rel-tol or the
windows/tokens scored differ, 2 when either side fails to run.
"""
import argparse, json, os, subprocess, sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("awq")
    ap.add_argument("model")
    ap.add_argument("text")
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--protocol", default="autoawq")
    ap.add_argument("--max-windows", type=int, default=-1)
    ap.add_argument("--rel-tol", type=float, default=1e-4)
    ap.add_argument("--reference-cmd", default="",
                    help="reference command taking MODEL TEXT + protocol options (default: "
                         "python3 scripts/hf_ppl.py)")
    ap.add_argument("--ct-decompress", action="store_true",
                    help="reference: compressed-tensors' own decompressor (hf_ppl.py --ct-decompress)")
    a = ap.parse_args()

    def last_json(out):
        # The result is the last stdout line; loaders may print banners before it (gptqmodel).
        return json.loads([l for l in out.splitlines() if l.strip()][-1])
    common = ["--ctx", str(a.ctx), "--protocol", a.protocol]
    if a.max_windows > 0:
        common += ["--max-windows", str(a.max_windows)]
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        ours = last_json(subprocess.run([a.awq, "ppl", a.model, a.text, "--json"] + common,
                                         check=True, capture_output=True, text=True).stdout)
        ref = a.reference_cmd.split() or [sys.executable, os.path.join(here, "hf_ppl.py")]
        theirs = last_json(subprocess.run(ref + [a.model, a.text] + common +
                                           (["--ct-decompress"] if a.ct_decompress else []),
                                           check=True,
                                           capture_output=True, text=True).stdout)
    except subprocess.CalledProcessError as e:
        print(f"{e.cmd[0]} failed ({e.returncode}):\n{e.stderr[-3000:]}", file=sys.stderr)
        return 2
    rel = abs(ours["ppl"] - theirs["ppl"]) / theirs["ppl"]
    same = ours["tokens_scored"] == theirs["tokens_scored"] and ours["windows"] == theirs["windows"]
    print(json.dumps({"model": a.model, "awq_ppl": ours["ppl"], "pytorch_ppl": theirs["ppl"],
                      "rel_diff": rel, "rel_tol": a.rel_tol, "tokens_scored": ours["tokens_scored"],
                      "windows": ours["windows"], "same_windows": same}))
    return 0 if (rel <= a.rel_tol and same) else 1


if __name__ == "__main__":
    sys.exit(main())
