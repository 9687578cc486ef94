"""What AutoAWQ 0.2.9 needs to import and run on a CPU without a GPU stack, shared by
scripts/autoawq_ppl.py and scripts/autoawq_quantize.py (import this module before `awq`):
  - AutoAWQ's package import needs the `datasets` module only for its hub calibration loader
    (not used by either script), so a stub module is put on sys.path;
  - Triton is installed with torch but needs a GPU, so AutoAWQ's pure-PyTorch GEMM path is
    selected (`awq.modules.linear.gemm.TRITON_AVAILABLE = False`, the path AutoAWQ takes
    without Triton).
Also the fp32 reference both scripts compare against: to_fp32_dequant().
"""
import os, sys, tempfile

_stub = tempfile.mkdtemp(prefix="awq_stub_")
os.makedirs(os.path.join(_stub, "datasets"))
with open(os.path.join(_stub, "datasets", "__init__.py"), "w") as f:
    f.write("def load_dataset(*a, **k):\n    raise RuntimeError('datasets stub: not used')\n")
sys.path.insert(0, _stub)

import awq.modules.linear.gemm as _awq_gemm  # noqa: E402

_awq_gemm.TRITON_AVAILABLE = False


def to_fp32_dequant(model):
    """Replace every WQLinear_GEMM of an AutoAWQ model by an fp32 nn.Linear of AutoAWQ's own
    unpacking (awq.utils.packing_utils.dequantize_gemm: its bit order, zeros and group
    expansion) with the scales in fp32, and run the model in fp32: the reference that computes as
    our engine does (WQLinear_GEMM itself casts its input to fp16 in every forward). Returns the
    number of linears replaced."""
    import torch
    from awq.modules.linear.gemm import WQLinear_GEMM
    from awq.utils.packing_utils import dequantize_gemm
    hf = model.model
    todo = [(n, m) for n, m in hf.named_modules() if isinstance(m, WQLinear_GEMM)]
    for name, m in todo:
        w = dequantize_gemm(m.qweight, m.qzeros, m.scales.float(), m.w_bit, m.group_size)
        lin = torch.nn.Linear(m.in_features, m.out_features, bias=m.bias is not None,
                              dtype=torch.float32)
        lin.weight.data = w.t().contiguous().float()
        if m.bias is not None:
            lin.bias.data = m.bias.float()
        parent, _, leaf = name.rpartition(".")
        setattr(hf.get_submodule(parent), leaf, lin)
    hf.float()
    return len(todo)
