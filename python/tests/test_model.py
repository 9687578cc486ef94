"""awq_cpp.Model against the CLI (`awq logits`, `awq ppl`, `awq generate`) and Transformers."""
import json
import os

import numpy as np
import pytest

import awq_cpp
from conftest import REPO, run_awq

PROMPTS = ["The capital of France is", "def fibonacci(n):\n    if n < 2:"]
EVAL = os.path.join(REPO, "data", "eval", "wikitext2-test-slice.txt")


def cli_logits(model, prompt, tmp_path):
    out = tmp_path / "l.npy"
    run_awq("logits", model, "-p", prompt, "-o", out)
    return np.load(out)


def cli_generate(model, prompt, n, *extra):
    r = run_awq("generate", model, "-p", prompt, "-n", n, *extra)
    assert r.stdout.endswith("\n")
    return r.stdout[:-1]


# ---- any model: the tiny synthetic one always, SmolLM2 when make test provides it ----

@pytest.fixture(params=["tiny_fp32", "tiny_w4", "smollm2_fp32", "smollm2_w4"])
def model_dir(request):
    name = request.param
    fixture = {"tiny_fp32": "tiny_model", "tiny_w4": "tiny_awq", "smollm2_fp32": "smollm2_dir",
               "smollm2_w4": "smollm2_awq_dir"}[name]
    return request.getfixturevalue(fixture)


def test_logits_equal_cli_forward(model_dir, tmp_path):
    m = awq_cpp.Model(model_dir)
    for p in PROMPTS:
        ids = m.tokenize(p)
        py = m.logits(ids)
        assert py.dtype == np.float32 and py.shape == (len(ids), m.vocab_size)
        np.testing.assert_array_equal(py, cli_logits(model_dir, p, tmp_path))
        assert py.flags["C_CONTIGUOUS"]
        # a NumPy array of ids works as well
        np.testing.assert_array_equal(m.logits(np.array(ids, dtype=np.int64)), py)


def test_streaming_generate_equals_cli(model_dir):
    if "tiny" in model_dir or "/tiny" in model_dir:
        pytest.skip("random weights emit invalid UTF-8 the CLI test reads as text")
    m = awq_cpp.Model(model_dir)
    for p in PROMPTS:
        pieces = list(m.generate(p, 24, temperature=0.0, stream=True))
        assert "".join(pieces) == cli_generate(model_dir, p, 24, "--temperature", "0")
        assert m.generate(p, 24, temperature=0.0) == "".join(pieces)
    # seeded sampling follows the same random stream
    s = m.generate(PROMPTS[0], 20, temperature=0.9, top_k=40, top_p=0.95, seed=7)
    assert s == cli_generate(model_dir, PROMPTS[0], 20, "--temperature", "0.9", "--top-k", "40",
                             "--top-p", "0.95", "--seed", "7")
    # stop strings end the text where the CLI ends it
    full = m.generate(PROMPTS[0], 24, temperature=0.0)
    if len(full.strip()) > 6:
        stop = full.strip()[3:6]
        assert m.generate(PROMPTS[0], 24, temperature=0.0, stop=stop) == cli_generate(
            model_dir, PROMPTS[0], 24, "--temperature", "0", "--stop", stop)


def test_generation_stream_details(model_dir):
    if "/tiny" in model_dir:
        pytest.skip("random weights emit invalid UTF-8")
    m = awq_cpp.Model(model_dir)
    g = m.generate(PROMPTS[0], 10, temperature=0.0, stream=True)
    text = "".join(g)
    st = g.stats
    assert st["generated_tokens"] == len(g.token_ids) <= 10
    assert st["prompt_tokens"] == len(m.tokenize(PROMPTS[0])) == len(g.prompt_ids)
    assert m.detokenize(g.token_ids) == text or st["hit_stop"]
    # token-id prompts give the same continuation
    assert m.generate(m.tokenize(PROMPTS[0]), 10, temperature=0.0) == text
    # a newer generation invalidates an older iterator
    g1 = m.generate(PROMPTS[0], 10, temperature=0.0, stream=True)
    next(iter(m.generate(PROMPTS[1], 10, temperature=0.0, stream=True)), None)
    with pytest.raises(RuntimeError, match="another generation"):
        list(g1)


def test_perplexity_equals_cli(model_dir):
    m = awq_cpp.Model(model_dir)
    text = open(EVAL, encoding="utf-8", newline="").read()  # the bytes awq ppl reads
    for ctx, proto in [(128, "autoawq"), (96, "llamacpp")]:
        r = m.perplexity(text, ctx=ctx, protocol=proto, max_windows=3)
        cli = json.loads(run_awq("ppl", model_dir, EVAL, "--ctx", ctx, "--protocol", proto,
                                 "--max-windows", 3, "--json").stdout)
        assert r.ppl == cli["ppl"] and r.mean_nll == cli["mean_nll"]
        assert r.ppl_stderr == cli["ppl_stderr"]
        assert (r.windows, r.tokens_scored, r.protocol) == (cli["windows"], cli["tokens_scored"],
                                                           cli["protocol"])


def test_bad_arguments(tiny_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        awq_cpp.Model(tmp_path / "missing")
    m = awq_cpp.Model(tiny_model)
    with pytest.raises(ValueError, match="max_new_tokens"):
        m.generate("hi", -1)
    with pytest.raises(ValueError, match="top_p"):
        m.generate("hi", 4, top_p=2.0)
    with pytest.raises(ValueError, match="temperature"):
        m.generate("hi", 4, temperature=-1.0)
    with pytest.raises(ValueError, match="token_ids"):
        m.logits([m.vocab_size + 5])
    with pytest.raises(ValueError, match="token_ids"):
        m.logits([])
    with pytest.raises(ValueError, match="protocol"):
        m.perplexity("some text", protocol="wikitext")
    with pytest.raises(ValueError, match="lm_head"):
        awq_cpp.Model(tiny_model, lm_head="q4")
    with pytest.raises(ValueError, match="chat template"):
        m.chat([{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError, match="role"):
        m.apply_chat_template([{"content": "hi"}])
    # the library's messages are the CLI's
    short = tmp_path / "short.txt"
    short.write_text("too short")
    cli = run_awq("ppl", tiny_model, short, "--ctx", 64, check=False)
    assert cli.returncode == 1
    with pytest.raises(ValueError) as e:
        m.perplexity("too short", ctx=64)
    assert "error: " + str(e.value) == cli.stderr.strip()
    long_prompt = "word " * 3000
    with pytest.raises(ValueError, match="context"):
        m.generate(long_prompt, 4)


# ---- SmolLM2 only: Transformers' logits (fixture), chat template ----

def test_logits_match_transformers_fixture(smollm2_dir):
    """Same fixture and tolerance as tests/model/forward_test.cpp (SmolLM2.LogitsMatchTransformers)."""
    from safetensors.numpy import load_file
    fx = load_file(os.path.join(REPO, "tests", "fixtures", "model", "smollm2_logits.safetensors"))
    m = awq_cpp.Model(smollm2_dir)
    sel = fx["sel_ids"]
    i = 0
    while f"tokens_{i}" in fx:
        toks = fx[f"tokens_{i}"]
        lg = m.logits(toks)
        np.testing.assert_array_equal(lg.argmax(-1), fx[f"argmax_{i}"])
        tol = 2e-4 * np.maximum(1.0, np.abs(fx[f"lse_{i}"]))[:, None]
        err = np.abs(lg[:, sel].astype(np.float64) - fx[f"sel_{i}"])
        assert (err <= tol).all(), f"prompt {i}: max err {err.max()}"
        i += 1
    assert i >= 1


def test_chat_equals_cli(smollm2_awq_dir):
    m = awq_cpp.Model(smollm2_awq_dir)
    q = "What is 2+2? Answer briefly."
    reply = m.chat([{"role": "user", "content": q}], 24, temperature=0.0)
    assert reply == cli_generate(smollm2_awq_dir, q, 24, "--chat", "--temperature", "0")
    assert m.generate(q, 24, chat=True, temperature=0.0) == reply
    streamed = "".join(m.chat([{"role": "user", "content": q}], 24, temperature=0.0, stream=True))
    assert streamed == reply
    assert "<|im_start|>assistant" in m.apply_chat_template([{"role": "user", "content": q}])
