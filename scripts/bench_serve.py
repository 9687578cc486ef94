#!/usr/bin/env python3
"""Serving benchmark (not a test): concurrent streaming clients against OpenAI-compatible servers.

For each server (awq-cpp's `awq serve` and/or llama.cpp's `llama-server`) and each concurrency
level C, C client threads each send streaming `/v1/completions` requests back to back (greedy,
`max_tokens` output tokens, `ignore_eos` so every request generates exactly that many), with
prompts cut from the WikiText-2 slice shipped in data/eval/ (a different paragraph per request).
Reported per level: aggregate output tokens/s (completion tokens of all requests / wall time of the
level), time to first token (TTFT) p50/p95, inter-token latency (ITL: gaps between streamed content
chunks) p50/p95, errors; and the server's peak RSS (VmHWM) at the end.

Usage:
  scripts/bench_serve.py --awq-model models/smollm2-awq4 [--llama-gguf out/llcpp/smollm2-Q4_0.gguf]
      [--levels 1,4,16,32,64] [--max-tokens 128] [--threads 2] [--json out/bench_serve.json]
  scripts/bench_serve.py --url http://127.0.0.1:8080 --levels 1,4     (an already running server)

Only loopback addresses are used; every loop is bounded by the number of requests.
"""
import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_prompts(path, n_chars=600):
    """Paragraphs of the evaluation slice, each cut to about n_chars characters."""
    text = open(path, "rb").read().decode("utf-8")
    paras = [p.strip() for p in text.split("\n") if len(p.strip()) > 200 and not p.strip().startswith("=")]
    return [p[:n_chars] for p in paras]


def percentile(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(host, port, proc, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} while starting")
        try:
            c = http.client.HTTPConnection(host, port, timeout=2)
            c.request("GET", "/health")
            r = c.getresponse()
            r.read()
            if r.status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("server did not become healthy")


def stream_request(host, port, model, prompt, max_tokens, timeout=600):
    """One streaming completion. Returns (ttft_s, [gap_s...], completion_tokens, error or None)."""
    body = json.dumps({
        "model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
        "stream": True, "stream_options": {"include_usage": True}, "ignore_eos": True,
    })
    t0 = time.perf_counter()
    try:
        c = http.client.HTTPConnection(host, port, timeout=timeout)
        c.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            return None, [], 0, f"HTTP {r.status}: {r.read()[:200]!r}"
        ttft, last, gaps, chunks, usage = None, None, [], 0, None
        buf = b""
        while True:
            line = r.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            ev = json.loads(data)
            if ev.get("usage"):
                usage = ev["usage"]
            for ch in ev.get("choices") or []:
                if ch.get("text"):
                    now = time.perf_counter()
                    if ttft is None:
                        ttft = now - t0
                    else:
                        gaps.append(now - last)
                    last = now
                    chunks += 1
        c.close()
        n = usage["completion_tokens"] if usage else chunks
        if ttft is None:
            return None, [], n, "no content streamed"
        return ttft, gaps, n, None
    except Exception as e:  # noqa: BLE001 - any failure of one request counts as an error
        return None, [], 0, repr(e)


def run_level(host, port, model, prompts, conc, max_tokens, requests_per_client, tag=None):
    results, lock = [], threading.Lock()
    counter = [0]

    def client(ci):
        for i in range(requests_per_client):
            with lock:
                k = counter[0]
                counter[0] += 1
            prompt = prompts[k % len(prompts)]
            if tag is not None:  # a unique first line: no two requests share a cached prefix
                prompt = f"Request {tag}-{k}.\n{prompt}"
            res = stream_request(host, port, model, prompt, max_tokens)
            with lock:
                results.append(res)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(conc)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ttfts = [r[0] for r in results if r[3] is None]
    gaps = [g for r in results if r[3] is None for g in r[1]]
    tokens = sum(r[2] for r in results if r[3] is None)
    errors = [r[3] for r in results if r[3] is not None]
    return {
        "concurrency": conc, "requests": len(results), "wall_s": wall, "output_tokens": tokens,
        "tok_per_s": tokens / wall if wall > 0 else 0.0,
        "ttft_p50_s": percentile(ttfts, 0.5), "ttft_p95_s": percentile(ttfts, 0.95),
        "itl_p50_ms": 1e3 * percentile(gaps, 0.5), "itl_p95_ms": 1e3 * percentile(gaps, 0.95),
        "errors": len(errors), "first_error": errors[0] if errors else None,
    }


def peak_rss_mb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def bench_server(name, cmd, host, port, model, prompts, args):
    proc = None
    if cmd:
        print(f"# starting {name}: {' '.join(cmd)}", flush=True)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(f"{args.log_dir}/{name}.log", "w"))
    rows = []
    try:
        wait_healthy(host, port, proc)
        if model is None:
            c = http.client.HTTPConnection(host, port, timeout=10)
            c.request("GET", "/v1/models")
            model = json.loads(c.getresponse().read())["data"][0]["id"]
        # warm-up: one short request (page faults, thread pools)
        stream_request(host, port, model, prompts[0], 8)
        for conc in args.levels:
            per_client = max(1, args.requests // conc) if args.requests else 2
            tag = None if args.shared_prompts else f"{conc}"
            row = run_level(host, port, model, prompts, conc, args.max_tokens, per_client, tag)
            row["server"] = name
            rows.append(row)
            print(f"{name:10s} C={conc:3d} req={row['requests']:4d} {row['tok_per_s']:8.1f} tok/s  "
                  f"TTFT p50 {row['ttft_p50_s']:.3f}s p95 {row['ttft_p95_s']:.3f}s  "
                  f"ITL p50 {row['itl_p50_ms']:.1f}ms p95 {row['itl_p95_ms']:.1f}ms  "
                  f"errors {row['errors']}" + (f" ({row['first_error']})" if row['errors'] else ""),
                  flush=True)
        if args.rss_streams and proc is not None:
            # peak RSS with rss_streams concurrent sequences of about 1024 tokens each
            run_level(host, port, model, [p * 2 for p in prompts], args.rss_streams, args.rss_tokens, 1)
            rss = peak_rss_mb(proc.pid)
            print(f"{name:10s} peak RSS after {args.rss_streams} streams x ~{args.rss_tokens} "
                  f"generated tokens: {rss:.0f} MB", flush=True)
            rows.append({"server": name, "peak_rss_mb": rss, "rss_streams": args.rss_streams})
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--awq-model", help="checkpoint for `awq serve`")
    ap.add_argument("--awq-bin", default=os.path.join(ROOT, "build", "awq"))
    ap.add_argument("--awq-arg", action="append", default=[],
                    help="extra `awq serve` argument (repeatable), e.g. --awq-arg=--no-batch-invariant")
    ap.add_argument("--llama-gguf", help="GGUF for llama-server")
    ap.add_argument("--llama-server", default=os.path.join(
        ROOT, "out/llcpp/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin/llama-server"))
    ap.add_argument("--url", help="benchmark an already running server instead")
    ap.add_argument("--model", default=None, help="model name to send (default: from /v1/models)")
    ap.add_argument("--levels", default="1,4,16,32,64")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--requests", type=int, default=64,
                    help="requests per level (split over the clients; at least one per client)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shared-prompts", action="store_true",
                    help="send the same paragraphs at every level (later levels and repeats then hit "
                         "the servers' prompt caches); default: each request starts with its own line")
    ap.add_argument("--ctx", type=int, default=1024, help="tokens per sequence")
    ap.add_argument("--rss-streams", type=int, default=0, help="also measure peak RSS at N streams")
    ap.add_argument("--rss-tokens", type=int, default=768)
    ap.add_argument("--prompts", default=os.path.join(ROOT, "data/eval/wikitext2-test-slice.txt"))
    ap.add_argument("--json", help="write all rows here")
    ap.add_argument("--log-dir", default=os.path.join(ROOT, "out"))
    args = ap.parse_args()
    args.levels = [int(x) for x in args.levels.split(",")]
    os.makedirs(args.log_dir, exist_ok=True)
    prompts = load_prompts(args.prompts)
    maxc = max(args.levels + [args.rss_streams])
    rows = []
    print(f"# load before: {open('/proc/loadavg').read().strip()}", flush=True)
    if args.url:
        u = urllib.parse.urlparse(args.url)
        rows += bench_server("server", None, u.hostname, u.port, args.model, prompts, args)
    if args.awq_model:
        port = free_port()
        cmd = [args.awq_bin, "serve", args.awq_model, "--port", str(port), "--parallel", str(maxc),
               "--ctx", str(args.ctx), "--threads", str(args.threads)] + args.awq_arg
        rows += bench_server("awq-cpp", cmd, "127.0.0.1", port, args.model, prompts, args)
    if args.llama_gguf:
        port = free_port()
        cmd = [args.llama_server, "-m", args.llama_gguf, "--port", str(port), "-np", str(maxc),
               "-c", str(args.ctx * maxc), "-t", str(args.threads), "-tb", str(args.threads),
               "--cont-batching", "--no-webui"]
        rows += bench_server("llama.cpp", cmd, "127.0.0.1", port, args.model, prompts, args)
    print(f"# load after: {open('/proc/loadavg').read().strip()}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
