#!/usr/bin/env python3
"""End-to-end tests of `awq serve` on the SmolLM2 W4 checkpoint (run by tests/server/server_test.cpp).

A real client nobody here wrote (the `openai` package) for chat and completions, with and
without streaming; greedy output equal to `awq generate`; 16 concurrent requests equal to the
same requests sent alone; a prefix-cache hit equal to a cold run; raw-HTTP faults (bounded in
count and time, 127.0.0.1 only) while /health keeps answering; afterwards /metrics shows no
running sequence and no used KV block; API key (401); SIGTERM ends a stream with [DONE] and the
process exits 0.

usage: test_serve.py AWQ_BINARY MODEL_DIR
"""
import concurrent.futures as cf
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import openai

AWQ, MODEL = sys.argv[1], sys.argv[2]
HOST = "127.0.0.1"
NAME = "smollm2-w4"
FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what, flush=True)
    return cond


class Server:
    def __init__(self, *extra):
        cmd = [AWQ, "serve", MODEL, "--port", "0", "--served-model-name", NAME, "--ctx", "512",
               "--parallel", "16", "--kv-cache-mb", "64", "--max-queue", "64", "--threads", "2",
               "--http-threads", "600", *extra]
        self.p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                  errors="replace")
        self.log = []
        self.port = None
        ready = threading.Event()

        def reader():
            for line in self.p.stderr:
                self.log.append(line)
                m = re.search(r"on http://[0-9.]+:(\d+)", line)
                if m and not self.port:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=reader, daemon=True).start()
        ready.wait(120)
        if not self.port:
            raise SystemExit("server did not start:\n" + "".join(self.log))
        self.url = f"http://{HOST}:{self.port}"

    def request(self, method, path, body=None, headers=None, timeout=60):
        c = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        c.close()
        try:
            return r.status, json.loads(raw)
        except ValueError:
            return r.status, raw.decode("utf-8", "replace")

    def metrics(self):
        _, text = self.request("GET", "/metrics")
        vals = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                vals[k] = float(v)
        return vals

    def stop(self, sig=signal.SIGTERM, timeout=30):
        self.p.send_signal(sig)
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return None


def generate(prompt, n, chat=False):
    # the server's defaults: batch-invariant rows, fp16 K/V
    cmd = [AWQ, "generate", MODEL, "-p", prompt, "-n", str(n), "--temperature", "0", "--threads", "2",
           "--batch-invariant", "--kv-dtype", "f16"]
    if chat:
        cmd.append("--chat")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith("\n")
    return out.stdout[:-1]


def sse_events(sock_file):
    """Yield the data payloads of an SSE stream read from a socket file (after the headers)."""
    for raw in sock_file:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line.startswith("data: "):
            yield line[6:]


def raw_stream(port, body, timeout=60):
    s = socket.create_connection((HOST, port), timeout=timeout)
    data = json.dumps(body).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
    return s


def wait_idle(srv, secs=30):
    t0 = time.time()
    m = srv.metrics()
    while time.time() - t0 < secs:
        m = srv.metrics()
        if m.get("awq_num_requests_running") == 0 and m.get("awq_kv_blocks_used") == 0 and \
                m.get("awq_num_requests_waiting") == 0:
            return m
        time.sleep(0.2)
    return m


def main():
    t_start = time.time()
    srv = Server()
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=120)

    # --- greedy through the server == awq generate ---
    prompt = "The capital of France is"
    ref = generate(prompt, 16)
    c = client.completions.create(model=NAME, prompt=prompt, max_tokens=16, temperature=0)
    check(c.choices[0].text == ref, f"completions != awq generate: {c.choices[0].text!r} vs {ref!r}")
    check(c.usage.prompt_tokens > 0 and c.usage.completion_tokens <= 16, "completions usage")
    check(c.choices[0].finish_reason in ("stop", "length"), "completions finish_reason")

    question = "What is 2 + 2?"
    ref_chat = generate(question, 24, chat=True)
    r = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": question}],
                                       max_tokens=24, temperature=0)
    text = r.choices[0].message.content
    check(text == ref_chat, f"chat != awq generate --chat: {text!r} vs {ref_chat!r}")
    check(r.choices[0].message.role == "assistant" and r.usage.total_tokens ==
          r.usage.prompt_tokens + r.usage.completion_tokens, "chat usage/role")

    # streaming chat with usage: same text, final usage chunk with empty choices
    parts, usage, finish = [], None, None
    stream = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": question}],
                                            max_tokens=24, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    for ch in stream:
        if ch.usage:
            usage = ch.usage
            check(ch.choices == [], "usage chunk has empty choices")
        for choice in ch.choices:
            if choice.delta.content:
                parts.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    check("".join(parts) == text, f"streamed chat != non-streamed: {''.join(parts)!r} vs {text!r}")
    check(usage is not None and usage.completion_tokens == r.usage.completion_tokens, "stream usage")
    check(finish in ("stop", "length"), "stream finish_reason")

    # streaming completions
    parts = [ch.choices[0].text for ch in client.completions.create(
        model=NAME, prompt=prompt, max_tokens=16, temperature=0, stream=True) if ch.choices]
    check("".join(parts) == ref, "streamed completions != awq generate")

    # logprobs, n, echo, stop
    c = client.completions.create(model=NAME, prompt=prompt, max_tokens=4, temperature=0, logprobs=3, echo=True)
    lp = c.choices[0].logprobs
    check(c.choices[0].text.startswith(prompt), "echo")
    check(lp is not None and len(lp.token_logprobs) == len(lp.tokens) and all(x <= 0 for x in lp.token_logprobs)
          and len(lp.top_logprobs[0]) == 3, "completions logprobs")
    c = client.completions.create(model=NAME, prompt=prompt, max_tokens=6, temperature=1.0, n=3, seed=5)
    check(len(c.choices) == 3 and sorted(ch.index for ch in c.choices) == [0, 1, 2], "n=3")
    first_word = ref.split()[0] if ref.split() else ref[:2]
    c = client.completions.create(model=NAME, prompt=prompt, max_tokens=16, temperature=0, stop=[first_word])
    check(first_word not in c.choices[0].text and c.choices[0].finish_reason == "stop",
          f"stop string {first_word!r}: {c.choices[0].text!r}")
    r = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": question}],
                                       max_tokens=3, temperature=0, logprobs=True, top_logprobs=2)
    check(r.choices[0].logprobs is not None and len(r.choices[0].logprobs.content[0].top_logprobs) == 2,
          "chat logprobs")
    models = client.models.list()
    check([m.id for m in models.data] == [NAME], "models list")

    # --- 16 concurrent greedy requests == each alone ---
    prompts = [f"Write one sentence about the number {i}." for i in range(16)]

    def one(p):
        return client.completions.create(model=NAME, prompt=p, max_tokens=10, temperature=0).choices[0].text

    alone = [one(p) for p in prompts]
    with cf.ThreadPoolExecutor(16) as ex:
        together = list(ex.map(one, prompts))
    for i in range(16):
        check(together[i] == alone[i], f"concurrent != alone for prompt {i}: {together[i]!r} vs {alone[i]!r}")

    # --- prefix cache: a hit gives the tokens of a cold run ---
    system = "Zebra protocol: you answer every question briefly. " * 6
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": "Name a colour."}]
    cold = client.chat.completions.create(model=NAME, messages=msgs, max_tokens=12, temperature=0)
    hit = client.chat.completions.create(model=NAME, messages=msgs, max_tokens=12, temperature=0)
    check(cold.usage.prompt_tokens_details.cached_tokens == 0, "cold run had cached tokens")
    check(hit.usage.prompt_tokens_details.cached_tokens >= 32, "no prefix-cache hit on the second run")
    check(hit.choices[0].message.content == cold.choices[0].message.content, "prefix hit != cold")

    # --- tokenize / detokenize ---
    st, tk = srv.request("POST", "/tokenize", {"model": NAME, "prompt": "Hello world"})
    check(st == 200 and tk["count"] == len(tk["tokens"]) > 0, "tokenize")
    st, dt = srv.request("POST", "/detokenize", {"model": NAME, "tokens": tk["tokens"]})
    check(st == 200 and "Hello world" in dt["prompt"], "detokenize")

    # --- faults and bad input; /health must keep answering ---
    health_fail = []
    stop_health = threading.Event()

    def health_loop():
        while not stop_health.is_set():
            try:
                st, _ = srv.request("GET", "/health", timeout=15)
                if st != 200:
                    health_fail.append(st)
            except Exception as e:  # noqa: BLE001
                health_fail.append(repr(e))
            time.sleep(0.2)

    ht = threading.Thread(target=health_loop)
    ht.start()

    def expect_error(body, status, param=None, path="/v1/completions", raw=None):
        st, j = srv.request("POST", path, raw if raw is not None else body)
        ok = st == status and isinstance(j, dict) and "error" in j and "message" in j["error"]
        if ok and param is not None:
            ok = j["error"].get("param") == param
        check(ok, f"{body if raw is None else raw[:40]!r}: expected {status}/{param}, got {st} {j}")

    expect_error(None, 400, raw=b'{"prompt": "hi", "max_tokens": ')
    expect_error(None, 400, raw=b'{"prompt": "\xff\xfe bad utf8", "max_tokens": 2}')
    expect_error(None, 400, raw=b'[1, 2, 3]')
    expect_error({"prompt": "hi", "max_tokens": "ten"}, 400, "max_tokens")
    expect_error({"prompt": "hi", "max_tokens": -1}, 400, "max_tokens")
    expect_error({"prompt": "hi", "max_tokens": 0}, 400, "max_tokens")
    expect_error({"prompt": "hi", "max_tokens": 10**12}, 400, "max_tokens")
    expect_error({"prompt": "hi", "max_tokens": 10**30}, 400, "max_tokens")
    expect_error({"prompt": "hi", "temperature": "hot"}, 400, "temperature")
    expect_error({"prompt": "hi", "top_p": 0}, 400, "top_p")
    expect_error({"prompt": "hi", "n": 0}, 400, "n")
    expect_error({"prompt": "hi", "stop": 5}, 400, "stop")
    expect_error({"prompt": "hi", "stream": "yes"}, 400, "stream")
    expect_error({"prompt": 12}, 400, "prompt")
    expect_error({"max_tokens": 2}, 400, "prompt")
    expect_error({"prompt": "word " * 600, "max_tokens": 2}, 400, "prompt")
    expect_error({"prompt": "hi", "model": "gpt-9"}, 404, "model")
    expect_error({"messages": []}, 400, "messages", path="/v1/chat/completions")
    expect_error({"messages": "hi"}, 400, "messages", path="/v1/chat/completions")
    expect_error({"messages": [{"content": "no role"}]}, 400, "messages[0].role", path="/v1/chat/completions")
    expect_error({"messages": [{"role": "user", "content": 5}]}, 400, "messages[0].content",
                 path="/v1/chat/completions")
    st, j = srv.request("GET", "/v1/nothing")
    check(st == 404 and "error" in j, "unknown route is a JSON 404")
    st, j = srv.request("POST", "/v1/completions", {"prompt": "hi", "max_tokens": 2, "unknown_field": [1]})
    check(st == 200, "unknown fields are ignored")

    # a 10 MB body: 413 (the server reads and discards it, then answers)
    st, j = srv.request("POST", "/v1/completions", b'{"prompt": "' + b"a" * (10 << 20) + b'"}')
    check(st == 413 and "error" in j, f"10 MB body: {st}")

    # mid-stream disconnects: 8 streams read a little, then vanish
    socks = []
    for i in range(8):
        s = raw_stream(srv.port, {"prompt": f"Tell me a long story number {i}.", "max_tokens": 200,
                                  "temperature": 0, "stream": True, "ignore_eos": True})
        socks.append(s)
    for s in socks:
        f = s.makefile("rb")
        got = 0
        for _ in sse_events(f):
            got += 1
            if got == 2:
                break
        s.close()
    m = wait_idle(srv, 30)
    check(m.get("awq_num_requests_running") == 0 and m.get("awq_kv_blocks_used") == 0,
          f"disconnected streams still hold the engine: {m.get('awq_num_requests_running')} running, "
          f"{m.get('awq_kv_blocks_used')} blocks")

    # a slow client: tiny receive buffer, reads a few bytes at a time; others are not held up
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    slow.settimeout(60)
    slow.connect((HOST, srv.port))
    data = json.dumps({"prompt": "Count from one to fifty:", "max_tokens": 48, "temperature": 0,
                       "stream": True, "ignore_eos": True}).encode()
    slow.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
    t0 = time.time()
    quick = client.completions.create(model=NAME, prompt="Hi", max_tokens=4, temperature=0)
    check(quick.choices[0].text is not None and time.time() - t0 < 30, "a slow client held others up")
    buf = b""
    while b"data: [DONE]" not in buf and time.time() - t0 < 60:
        chunk = slow.recv(64)
        if not chunk:
            break
        buf += chunk
        time.sleep(0.01)
    slow.close()
    check(b"data: [DONE]" in buf, "slow client did not get the whole stream")

    # 500 concurrent connections: every one gets 200 or 503 (queue full), within the time bound
    def hammer(i):
        try:
            body = {"prompt": f"Item {i}:", "max_tokens": 2, "temperature": 0}
            st, _ = srv.request("POST", "/v1/completions", body, timeout=120)
            return st
        except Exception as e:  # noqa: BLE001
            return repr(e)

    t0 = time.time()
    with cf.ThreadPoolExecutor(500) as ex:
        statuses = list(ex.map(hammer, range(500)))
    elapsed = time.time() - t0
    counts = {s: statuses.count(s) for s in set(statuses)}
    check(set(counts) <= {200, 503} and counts.get(200, 0) > 0, f"500 connections: {counts}")
    check(elapsed < 150, f"500 connections took {elapsed:.0f} s")
    print(f"500 connections: {counts} in {elapsed:.1f} s", flush=True)

    stop_health.set()
    ht.join()
    check(not health_fail, f"/health failed during the faults: {health_fail[:5]}")
    m = wait_idle(srv, 30)
    check(m.get("awq_num_requests_running") == 0, "running sequences after the tests")
    check(m.get("awq_kv_blocks_used") == 0, "used KV blocks after the tests")
    check(m.get('awq_requests_total{route="/v1/completions",status="400"}', 0) > 0, "400s counted")
    check(m.get("awq_time_to_first_token_seconds_count", 0) > 0, "TTFT histogram")
    rc = srv.stop(signal.SIGINT)
    check(rc == 0, f"SIGINT exit code {rc}")
    check(any("status=200" in line and "ttft=" in line for line in srv.log), "per-request log lines")

    # --- API key; SIGTERM during a stream ends it with [DONE], exit 0 ---
    srv2 = Server("--api-key", "sekret", "--drain-seconds", "0.5")
    st, j = srv2.request("GET", "/v1/models")
    check(st == 401 and "error" in j, "no key: 401")
    st, j = srv2.request("GET", "/v1/models", headers={"Authorization": "Bearer wrong"})
    check(st == 401, "wrong key: 401")
    st, j = srv2.request("GET", "/health")
    check(st == 200, "/health needs no key")
    c2 = openai.OpenAI(base_url=srv2.url + "/v1", api_key="sekret", max_retries=0)
    check(c2.completions.create(model=NAME, prompt="Hi", max_tokens=2).usage.completion_tokens >= 1, "key accepted")
    s = socket.create_connection((HOST, srv2.port), timeout=60)
    data = json.dumps({"prompt": "Once upon a time", "max_tokens": 400, "temperature": 0, "stream": True,
                       "ignore_eos": True}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekret\r\n"
              b"Content-Type: application/json\r\nContent-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
    f = s.makefile("rb")
    events = []
    for ev in sse_events(f):
        events.append(ev)
        if len(events) == 2:
            srv2.p.send_signal(signal.SIGTERM)
        if ev == "[DONE]":
            break
    s.close()
    check(events and events[-1] == "[DONE]", "SIGTERM: the stream did not end with [DONE]")
    last = json.loads(events[-2]) if len(events) >= 2 else {}
    check(last.get("choices", [{}])[0].get("finish_reason") is not None, "SIGTERM: final chunk has a finish_reason")
    try:
        rc = srv2.p.wait(30)
    except subprocess.TimeoutExpired:
        srv2.p.kill()
        rc = None
    check(rc == 0, f"SIGTERM exit code {rc}")

    print(f"server tests: {len(FAILURES)} failures, {time.time() - t_start:.1f} s", flush=True)
    if FAILURES:
        print("server log tail:\n" + "".join(srv.log[-30:]), flush=True)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
