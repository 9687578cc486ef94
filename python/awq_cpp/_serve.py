"""awq_cpp.serve: the OpenAI-compatible server (`awq serve`) from Python.

The server runs as the package's own `awq serve` process, not inside the interpreter: it owns
its signals (SIGINT/SIGTERM drain in-flight streams, then exit 0), its engine thread is the
thread that loaded the model (the OpenMP team the W4 kernels need, docs/RESULTS.md "Serving"),
and a Python program that only sends requests never holds the GIL against it.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

from ._errors import check_int, check_path
from .cli import require_binary

_START_LINE = re.compile(r"awq serve: .* on http://([^:\s]+):(\d+)")


class Server:
    """A running `awq serve` process (returned by `serve(..., block=False)`).

    `url` is http://host:port, `base_url` the OpenAI client's base (url + "/v1"). `stop()` (or
    leaving a `with` block) sends SIGINT and waits for the clean exit.
    """

    def __init__(self, proc, host, port, lines):
        self.process = proc
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        self.base_url = self.url + "/v1"
        self._lines = lines

    @property
    def log(self):
        """The server's stderr lines so far (start line, one line per request, shutdown)."""
        return list(self._lines)

    def running(self):
        return self.process.poll() is None

    def stop(self, timeout=30.0):
        """SIGINT, then wait up to `timeout` s (SIGKILL after that). Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return f"<awq_cpp.Server {self.url} {'running' if self.running() else 'stopped'}>"


def _args(model, host, port, parallel, ctx, kv_cache_mb, threads, api_key, max_queue,
          served_model_name, extra_args):
    check_path(model, "model")
    check_int(port, "port", minimum=0)
    check_int(parallel, "parallel", minimum=1)
    check_int(ctx, "ctx", minimum=1)
    check_int(max_queue, "max_queue", minimum=0)
    if not isinstance(kv_cache_mb, (int, float)) or isinstance(kv_cache_mb, bool) or kv_cache_mb <= 0:
        raise ValueError(f"kv_cache_mb must be a positive number, got {kv_cache_mb!r}")
    if not isinstance(host, str) or not host:
        raise ValueError(f"host must be a non-empty str, got {host!r}")
    args = ["serve", os.fspath(model), "--host", host, "--port", str(port), "--parallel",
            str(parallel), "--ctx", str(ctx), "--kv-cache-mb", str(kv_cache_mb), "--max-queue",
            str(max_queue)]
    if threads is not None:
        args += ["--threads", str(check_int(threads, "threads", minimum=0))]
    if api_key is not None:
        if not isinstance(api_key, str) or not api_key:
            raise ValueError("api_key must be a non-empty str")
        args += ["--api-key", api_key]
    if served_model_name is not None:
        args += ["--served-model-name", str(served_model_name)]
    if isinstance(extra_args, str):
        raise TypeError("extra_args must be a list of strings (awq serve flags), not one str")
    return args + [str(a) for a in extra_args]


def serve(model, *, host="127.0.0.1", port=8080, parallel=32, ctx=4096, kv_cache_mb=1024,
          threads=None, api_key=None, max_queue=256, served_model_name=None, extra_args=(),
          block=True, start_timeout=300.0, quiet=False):
    """Serve `model` (an HF fp directory or an AWQ / compressed-tensors checkpoint) over the
    OpenAI API: `awq serve` with the same flags (docs/SERVING.md).

    block=True runs until the server exits (Ctrl-C stops it cleanly) and returns its exit code.
    block=False returns a `Server` once the port is bound and /health answers; port=0 picks a
    free port (`Server.port`). quiet=True keeps the server's log lines off sys.stderr (they stay
    in `Server.log`). A server that exits during start-up raises RuntimeError with its message.
    """
    args = _args(model, host, port, parallel, ctx, kv_cache_mb, threads, api_key, max_queue,
                 served_model_name, extra_args)
    exe = require_binary()
    if block:
        proc = subprocess.Popen([exe] + args)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)  # the server drains its streams and exits 0
            return proc.wait()

    proc = subprocess.Popen([exe] + args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, errors="replace")
    lines = []
    bound = {}
    ready = threading.Event()

    def pump():  # keeps the pipe drained for the server's whole life
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if not quiet:
                sys.stderr.write(line)
            m = _START_LINE.search(line)
            if m and not bound:
                bound["host"], bound["port"] = m.group(1), int(m.group(2))
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + start_timeout
    ready.wait(max(0.0, deadline - time.monotonic()))
    if not bound:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        msg = "\n".join(l for l in lines if l.strip()) or f"exit code {proc.returncode}"
        raise RuntimeError(f"awq serve did not start: {msg}")
    srv = Server(proc, bound["host"], bound["port"], lines)
    while time.monotonic() < deadline:  # bound; the first /health may race the accept loop
        try:
            with urllib.request.urlopen(srv.url + "/health", timeout=5) as r:
                if r.status == 200:
                    return srv
        except OSError:
            if proc.poll() is not None:
                break
        time.sleep(0.05)
    srv.stop()
    raise RuntimeError("awq serve did not answer /health: " + "\n".join(lines[-5:]))
