"""Fixtures for the awq_cpp tests: the `awq` CLI to compare with, a tiny synthetic model, and
the SmolLM2 directories `make test` passes (AWQ_SMOLLM2_DIR, AWQ_SMOLLM2_AWQ_DIR)."""
import os
import subprocess
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def awq_bin():
    """The CLI the Python results are compared with: $AWQ_BIN (make test: build/awq, a separate
    build of the same sources) or the binary inside the installed package."""
    b = os.environ.get("AWQ_BIN")
    if b:
        return b
    import awq_cpp.cli
    return awq_cpp.cli.binary_path()


def run_awq(*args, check=True):
    r = subprocess.run([awq_bin(), *map(str, args)], capture_output=True, text=True,
                       env={**os.environ, "AWQ_PROGRESS": "0"})
    if check and r.returncode != 0:
        raise AssertionError(f"awq {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr}")
    return r


def make_synthetic(out, layers=2, hidden=256, intermediate=512, heads=4, kv_heads=2, seed=0):
    subprocess.run([sys.executable, os.path.join(REPO, "scripts", "make_synthetic_model.py"),
                    str(out), "--layers", str(layers), "--hidden", str(hidden), "--intermediate",
                    str(intermediate), "--heads", str(heads), "--kv-heads", str(kv_heads),
                    "--seed", str(seed)], check=True, capture_output=True)
    return str(out)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """2 layers, hidden 256 (g128 divides it), the tiny_llama3 tokenizer."""
    return make_synthetic(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_awq(tiny_model, tmp_path_factory):
    """An RTN W4 g64 checkpoint of the tiny model written by the CLI."""
    out = tmp_path_factory.mktemp("tiny_awq") / "model"
    run_awq("quantize", tiny_model, out, "--method", "rtn", "--group-size", "64")
    return str(out)


def _env_dir(name):
    d = os.environ.get(name)
    if not d or not os.path.isfile(os.path.join(d, "config.json")):
        pytest.skip(f"{name} not set or not a model directory (make test sets it)")
    return d


@pytest.fixture(scope="session")
def smollm2_dir():
    return _env_dir("AWQ_SMOLLM2_DIR")


@pytest.fixture(scope="session")
def smollm2_awq_dir():
    return _env_dir("AWQ_SMOLLM2_AWQ_DIR")


def files_of(d):
    """{name: bytes} of the *.safetensors files of a checkpoint directory."""
    return {f: open(os.path.join(d, f), "rb").read() for f in sorted(os.listdir(d))
            if f.endswith(".safetensors")}
