"""The AutoAWQ-compatible API: AutoAWQ's own quantize example (only the import changed) writes
the checkpoint `awq quantize` writes for the same options, byte for byte."""
import os
import subprocess
import sys

import pytest

from awq_cpp import AutoAWQForCausalLM, Model
from conftest import files_of, run_awq

HERE = os.path.dirname(os.path.abspath(__file__))


def test_autoawq_example_script_matches_cli(tiny_model, tmp_path):
    pytest.importorskip("transformers")  # the example imports AutoTokenizer from transformers
    out = tmp_path / "py"
    r = subprocess.run([sys.executable, os.path.join(HERE, "autoawq_quantize_example.py"),
                        tiny_model, out], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    run_awq("quantize", tiny_model, tmp_path / "cli", "--group-size", "128")
    a, b = files_of(out), files_of(tmp_path / "cli")
    assert a and a == b


def test_autoawq_example_script_on_smollm2_matches_cli(smollm2_dir, tmp_path):
    """The same example on the real model. Two substitutions, both visible here: SmolLM2's hidden
    size 576 is not a multiple of 128, so q_group_size 128 becomes 64 (`awq quantize` refuses g128
    there, as AutoAWQ's packer would), and max_calib_samples=4, apply_clip=False keep `make test`
    short (33 s per CLI run on 2 cores, against 191 s for 4 samples with clipping; the clip search
    is compared byte for byte on the tiny model above)."""
    pytest.importorskip("transformers")
    src = open(os.path.join(HERE, "autoawq_quantize_example.py")).read()
    script = src.replace('"q_group_size": 128', '"q_group_size": 64').replace(
        "model.quantize(tokenizer, quant_config=quant_config)",
        "model.quantize(tokenizer, quant_config=quant_config, max_calib_samples=4, apply_clip=False)")
    assert script.count('"q_group_size": 64') == 1 and script.count("apply_clip=False)") == 1
    (tmp_path / "example.py").write_text(script)
    out = tmp_path / "py"
    r = subprocess.run([sys.executable, tmp_path / "example.py", smollm2_dir, out],
                       capture_output=True, text=True, env={**os.environ, "AWQ_PROGRESS": "0"})
    assert r.returncode == 0, r.stderr[-3000:]
    run_awq("quantize", smollm2_dir, tmp_path / "cli", "--group-size", "64", "--n-samples", "4",
            "--no-clip")
    a, b = files_of(out), files_of(tmp_path / "cli")
    assert a and a == b
    # tokenizer.save_pretrained wrote a tokenizer our engine reads back
    assert Model(str(out)).tokenize("The capital of France") == \
        Model(smollm2_dir).tokenize("The capital of France")


def test_autoawq_api_without_transformers(tiny_model, tmp_path):
    """The same calls as the example with tokenizer=None (no transformers needed), plus the
    AutoAWQ argument names that map to awq quantize flags."""
    model = AutoAWQForCausalLM.from_pretrained(tiny_model, low_cpu_mem_usage=True, use_cache=False)
    model.quantize(None, quant_config={"zero_point": True, "q_group_size": 64, "w_bit": 4,
                                       "version": "GEMM"},
                   max_calib_samples=8, duo_scaling=False, apply_clip=False,
                   n_parallel_calib_samples=2)
    model.save_quantized(tmp_path / "py")
    run_awq("quantize", tiny_model, tmp_path / "cli", "--group-size", "64", "--n-samples", "8", "--no-duo-scaling", "--no-clip")
    assert files_of(tmp_path / "py") == files_of(tmp_path / "cli")
    # calib_data as a list of strings; modules_to_not_convert in quant_config
    texts = [f"Calibration sentence {i} about apples, pears and plums in the garden." for i in range(24)]
    m2 = AutoAWQForCausalLM.from_pretrained(tiny_model)
    m2.quantize(None, {"zero_point": True, "q_group_size": 64, "w_bit": 4, "version": "GEMM",
                       "modules_to_not_convert": ["down_proj"]},
                calib_data=texts, max_calib_samples=24, max_calib_seq_len=512)
    m2.save_quantized(tmp_path / "py2")
    calib = tmp_path / "c.jsonl"
    import json
    calib.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    run_awq("quantize", tiny_model, tmp_path / "cli2", "--group-size", "64", "--n-samples", "24",
            "--seqlen", "512", "--calib", calib, "--modules-to-not-convert", "down_proj")
    assert files_of(tmp_path / "py2") == files_of(tmp_path / "cli2")
    # from_quantized runs the checkpoint on the engine: token ids in, ids out
    q = AutoAWQForCausalLM.from_quantized(str(tmp_path / "py"))
    ids = Model(str(tmp_path / "py")).tokenize("hello world")
    out = q.generate(ids, max_new_tokens=5)
    assert out[0][:len(ids)] == ids and len(out[0]) <= len(ids) + 5
    assert isinstance(q.model, Model)


def test_autoawq_unsupported_raise(tiny_model, tmp_path):
    with pytest.raises(EnvironmentError):
        AutoAWQForCausalLM()
    with pytest.raises(FileNotFoundError, match="model_path"):
        AutoAWQForCausalLM.from_pretrained("Qwen/Qwen2.5-7B-Instruct")
    with pytest.raises(FileNotFoundError, match="quant_path"):
        AutoAWQForCausalLM.from_quantized(str(tmp_path / "nope"))
    m = AutoAWQForCausalLM.from_pretrained(tiny_model)
    with pytest.raises(NotImplementedError, match="version"):
        m.quantize(None, {"zero_point": True, "q_group_size": 128, "w_bit": 4, "version": "GEMV"})
    with pytest.raises(ValueError, match="quant_config"):
        m.quantize(None, {"q_group_size": 128, "bits": 4})
    with pytest.raises(FileNotFoundError, match="calib_data"):
        m.quantize(None, {"q_group_size": 128}, calib_data="mit-han-lab/pile-val-backup")
    with pytest.raises(NotImplementedError, match="export_compatible"):
        m.quantize(None, {"q_group_size": 128}, export_compatible=True)
    with pytest.raises(ValueError, match="quantize"):
        m.save_quantized(tmp_path / "o")
