"""What AutoAWQ 0.2.9 needs to import and run on a CPU without a GPU stack, shared by
scripts/autoawq_ppl.py and scripts/autoawq_quantize.py (import this module before `awq`):
  - AutoAWQ's package import needs the `datasets` module only for its hub calibration loader
    (not used by either script), so a stub module is put on sys.path;
  - Triton is installed with torch but needs a GPU, so AutoAWQ's pure-PyTorch GEMM path is
    selected (`awq.modules.linear.gemm.TRITON_AVAILABLE = False`, the path AutoAWQ takes
    without Triton).
"""
import os, sys, tempfile

_stub = tempfile.mkdtemp(prefix="awq_stub_")
os.makedirs(os.path.join(_stub, "datasets"))
with open(os.path.join(_stub, "datasets", "__init__.py"), "w") as f:
    f.write("def load_dataset(*a, **k):\n    raise RuntimeError('datasets stub: not used')\n")
sys.path.insert(0, _stub)

import awq.modules.linear.gemm as _awq_gemm  # noqa: E402

_awq_gemm.TRITON_AVAILABLE = False
