"""awq_cpp.serve: the package's `awq serve` from Python, driven by the real `openai` client."""
import os

import pytest

import awq_cpp


def test_serve_openai_client_equals_generate(smollm2_awq_dir):
    openai = pytest.importorskip("openai")
    prompt = "The capital of France is"
    want = awq_cpp.Model(smollm2_awq_dir).generate(prompt, 16, temperature=0.0)
    # fp32 K/V as Model.generate keeps them (the server's default is fp16)
    with awq_cpp.serve(smollm2_awq_dir, port=0, parallel=4, ctx=512, kv_cache_mb=64,
                       served_model_name="smol", block=False, quiet=True,
                       extra_args=["--kv-dtype", "f32"]) as srv:
        assert srv.running() and srv.port > 0
        client = openai.OpenAI(base_url=srv.base_url, api_key="unused")
        assert [m.id for m in client.models.list().data] == ["smol"]
        r = client.completions.create(model="smol", prompt=prompt, max_tokens=16, temperature=0)
        assert r.choices[0].text == want
        assert r.usage.completion_tokens <= 16
        pieces = [c.choices[0].text for c in client.completions.create(
            model="smol", prompt=prompt, max_tokens=16, temperature=0, stream=True)]
        assert "".join(pieces) == want
    assert srv.process.returncode == 0          # SIGINT: drained and exited cleanly
    assert any("stopped" in l for l in srv.log)


def test_serve_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="model"):
        awq_cpp.serve(tmp_path / "missing", block=False)
    with pytest.raises(TypeError, match="port"):
        awq_cpp.serve(tmp_path, port="80", block=False)
    with pytest.raises(ValueError, match="parallel"):
        awq_cpp.serve(tmp_path, parallel=0, block=False)
    with pytest.raises(ValueError, match="kv_cache_mb"):
        awq_cpp.serve(tmp_path, kv_cache_mb=-1, block=False)
    # a directory that is not a model: the server's own message, not a hang
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(RuntimeError, match=r"awq serve did not start: error: .*(tokenizer|config)\.json"):
        awq_cpp.serve(tmp_path, port=0, block=False, quiet=True, start_timeout=60)
