"""awq_cpp.quantize against `awq quantize`: same options -> byte-identical safetensors."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import awq_cpp
from conftest import REPO, files_of, make_synthetic, run_awq

FAST = ["--n-samples", "8"]


def _same_checkpoint(a, b):
    fa, fb = files_of(a), files_of(b)
    assert fa and sorted(fa) == sorted(fb)
    for name in fa:
        assert fa[name] == fb[name], f"{name} differs"
    ca = json.load(open(os.path.join(a, "config.json")))
    cb = json.load(open(os.path.join(b, "config.json")))
    assert ca["quantization_config"] == cb["quantization_config"]


@pytest.mark.parametrize("py_opts,cli_opts", [
    (dict(method="rtn", group_size=64), ["--method", "rtn", "--group-size", "64"]),
    (dict(group_size=128, n_samples=8), ["--group-size", "128"] + FAST),
    (dict(group_size=64, n_samples=8, clip=False, duo_scaling=False, zero_point=True),
     ["--group-size", "64", "--no-clip", "--no-duo-scaling"] + FAST),
    (dict(group_size=64, n_samples=8, grid_clip="sym"), ["--group-size", "64", "--grid-clip", "sym"] + FAST),
    (dict(group_size=64, n_samples=8, grid_stride=1), ["--group-size", "64", "--grid-stride", "1"] + FAST),
    (dict(group_size=64, n_samples=8, clip="sampled", search_blocks=0,
          gram_loss=False, modules_to_not_convert=["down_proj"]),
     ["--group-size", "64", "--clip", "sampled", "--search-blocks", "0", "--no-gram-loss",
      "--modules-to-not-convert", "down_proj"] + FAST),
])
def test_quantize_matches_cli(tiny_model, tmp_path, py_opts, cli_opts):
    run_awq("quantize", tiny_model, tmp_path / "cli", *cli_opts)
    rep = awq_cpp.quantize(tiny_model, tmp_path / "py", progress=False, **py_opts)
    _same_checkpoint(tmp_path / "cli", tmp_path / "py")
    assert rep["calib_blocks"] >= 0 and isinstance(rep["warnings"], list)


def test_calib_list_matches_cli_jsonl(tiny_model, tmp_path):
    texts = [l["text"] for l in map(json.loads, open(os.path.join(REPO, "data/calib/default.jsonl")))][:40]
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    run_awq("quantize", tiny_model, tmp_path / "cli", "--group-size", "64", "--calib", jsonl, *FAST)
    awq_cpp.quantize(tiny_model, tmp_path / "py", group_size=64, calib=texts, n_samples=8, progress=False)
    _same_checkpoint(tmp_path / "cli", tmp_path / "py")
    # a path works too, and the default corpus gives a different checkpoint than this one
    awq_cpp.quantize(tiny_model, tmp_path / "py2", group_size=64, calib=str(jsonl), n_samples=8, progress=False)
    _same_checkpoint(tmp_path / "cli", tmp_path / "py2")
    awq_cpp.quantize(tiny_model, tmp_path / "dflt", group_size=64, n_samples=8,
                     progress=False)
    assert files_of(tmp_path / "dflt") != files_of(tmp_path / "cli")


def test_progress_callback(tiny_model, tmp_path):
    seen = []
    awq_cpp.quantize(tiny_model, tmp_path / "o", method="rtn", group_size=64,
                     progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (2, 2)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_report_file(tiny_model, tmp_path):
    awq_cpp.quantize(tiny_model, tmp_path / "o", group_size=64, n_samples=8,
                     progress=False, report=tmp_path / "r.json")
    run_awq("quantize", tiny_model, tmp_path / "c", "--group-size", "64", "--report",
            tmp_path / "rc.json", *FAST)
    py, cli = json.load(open(tmp_path / "r.json")), json.load(open(tmp_path / "rc.json"))
    assert [g["best_index"] for g in py["groups"]] == [g["best_index"] for g in cli["groups"]]
    assert [g["loss_best"] for g in py["groups"]] == pytest.approx([g["loss_best"] for g in cli["groups"]], rel=1e-6)
    # one serialization (quant/quantize.h report_to_json): the same keys and entries
    assert sorted(py) == sorted(cli)
    assert py["groups"] and py["clips"]
    assert [(c["layer"], c["linear"]) for c in py["clips"]] == [(c["layer"], c["linear"]) for c in cli["clips"]]
    assert [c["err_after"] for c in py["clips"]] == pytest.approx([c["err_after"] for c in cli["clips"]], rel=1e-6)
    assert py["calib_tokens"] == cli["calib_tokens"] and py["gemm_flop"] == cli["gemm_flop"]


def _cli_error(*args):
    r = run_awq(*args, check=False)
    assert r.returncode == 1
    return r.stderr.strip().splitlines()[-1].removeprefix("error: ")


def test_bad_arguments(tiny_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="model"):
        awq_cpp.quantize(tmp_path / "missing", tmp_path / "o")
    with pytest.raises(FileNotFoundError, match="out_dir"):
        awq_cpp.quantize(tiny_model, tmp_path / "no" / "such" / "o")
    with pytest.raises(FileNotFoundError, match="calib"):
        awq_cpp.quantize(tiny_model, tmp_path / "o", calib=tmp_path / "none.txt")
    with pytest.raises(ValueError, match="method"):
        awq_cpp.quantize(tiny_model, tmp_path / "o", method="gptq")
    with pytest.raises(ValueError, match="grid_clip"):
        awq_cpp.quantize(tiny_model, tmp_path / "o", grid_clip="fine")
    with pytest.raises(ValueError, match="clip"):
        awq_cpp.quantize(tiny_model, tmp_path / "o", clip="fancy")
    with pytest.raises(ValueError, match="n_samples"):
        awq_cpp.quantize(tiny_model, tmp_path / "o", n_samples=0)
    with pytest.raises(TypeError, match="w_bit"):
        awq_cpp.quantize(tiny_model, tmp_path / "o", w_bit="4")
    # errors from the library carry the CLI's message
    for py, cli in [(dict(group_size=96), ["--group-size", "96"]),
                    (dict(w_bit=9), ["--w-bit", "9"])]:
        msg = _cli_error("quantize", tiny_model, tmp_path / "c", *cli)
        with pytest.raises(ValueError) as e:
            awq_cpp.quantize(tiny_model, tmp_path / "o", progress=False, **py)
        assert str(e.value) == msg
    assert not os.path.exists(tmp_path / "o") and not os.path.exists(tmp_path / "c")
    os.mkdir(tmp_path / "exists")
    with pytest.raises(FileExistsError, match="out_dir"):
        awq_cpp.quantize(tiny_model, tmp_path / "exists", method="rtn")


def test_sigint_raises_keyboard_interrupt_and_leaves_nothing(tmp_path):
    """SIGINT sent to the process while quantize runs: KeyboardInterrupt, no output directory,
    no temporary directory left beside it."""
    model = make_synthetic(tmp_path / "m", layers=8, hidden=512, intermediate=1536)
    out = tmp_path / "out"
    child = textwrap.dedent(f"""
        import os, signal, sys, awq_cpp
        # Python installs its KeyboardInterrupt handler only when SIGINT is not inherited as
        # ignored, and a job started in the background (`make test &`, nohup) inherits SIG_IGN:
        # restore what an interactive Python has.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        def progress(done, total):
            if done >= 1:
                print("block-done", flush=True)
        try:
            awq_cpp.quantize({str(model)!r}, {str(out)!r}, group_size=128, n_samples=32,
                             seqlen=512, threads=1, progress=progress)
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
            sys.exit(3)
        print("finished", flush=True)
    """)
    p = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.strip() == "block-done"
    p.send_signal(signal.SIGINT)
    rest = p.stdout.read()
    assert p.wait(timeout=120) == 3, rest
    assert "KeyboardInterrupt" in rest
    # no output directory and no temporary one; the resume state (like `awq quantize`) only
    assert not os.path.exists(out)
    assert set(os.listdir(tmp_path)) <= {"m", "out.resume"}, os.listdir(tmp_path)
