"""awq-cpp from Python: AWQ quantization and the W4 CPU engine.

Native API::

    import awq_cpp
    awq_cpp.quantize("models/smollm2-fp32", "out/smollm2-awq", group_size=64)
    m = awq_cpp.Model("out/smollm2-awq")
    print(m.generate("The capital of France is", max_new_tokens=16))

AutoAWQ-compatible API (change only the import)::

    from awq_cpp import AutoAWQForCausalLM

See docs/PYTHON.md.
"""
from ._errors import check_path
from ._model import GenerationStream, Model, PerplexityResult
from ._quantize import quantize
from ._serve import Server, serve
from .autoawq import AutoAWQForCausalLM

__version__ = "0.1.0"

__all__ = ["AutoAWQForCausalLM", "GenerationStream", "Model", "PerplexityResult", "Server", "quantize",
           "serve", "__version__"]
