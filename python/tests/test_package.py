"""Packaging: the module imports, the `awq` entry point runs the bundled binary, and the wheel
installs into a fresh virtual environment."""
import os
import shutil
import subprocess
import sys

import awq_cpp
import awq_cpp.cli
from conftest import REPO


def test_import_and_version():
    assert awq_cpp.__version__
    assert callable(awq_cpp.quantize) and awq_cpp.Model and awq_cpp.AutoAWQForCausalLM


def test_console_entry_point_runs_the_binary():
    assert os.access(awq_cpp.cli.binary_path(), os.X_OK)
    exe = os.path.join(os.path.dirname(sys.executable), "awq")
    assert os.path.exists(exe), "the awq console script is not installed beside python"
    r = subprocess.run([exe, "quantize", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--group-size" in r.stdout
    r = subprocess.run([exe, "ppl", "/nonexistent", "/nonexistent"], capture_output=True, text=True)
    assert r.returncode != 0


def test_wheel_installs_into_fresh_venv(tmp_path):
    """`pip wheel .` (same persistent build folder as `pip install .`), then a new venv without
    system site-packages: install the wheel offline (--no-deps) and import awq_cpp there."""
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation",
                        "--no-deps", "-w", str(wheels), REPO], capture_output=True, text=True,
                       env={**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": "2"})
    assert r.returncode == 0, r.stderr[-3000:]
    whl = [f for f in os.listdir(wheels) if f.endswith(".whl")]
    assert len(whl) == 1 and whl[0].startswith("awq_cpp-")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                        str(wheels / whl[0])], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(py), "-c", "import awq_cpp, sys; print(awq_cpp.__file__)"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert str(venv) in r.stdout
    r = subprocess.run([str(venv / "bin" / "awq"), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "quantize" in r.stdout
