"""AutoAWQ-compatible front-end: `from awq_cpp import AutoAWQForCausalLM`.

Names, argument names and defaults follow AutoAWQ (casper-hansen/AutoAWQ, awq/models/auto.py
and base.py). The work is done by awq_cpp.quantize / awq_cpp.Model; arguments that only make
sense for a PyTorch/GPU implementation are accepted when they do not change the result and
raise NotImplementedError when they would (docs/PYTHON.md has the table).
"""
import json
import os
import re
import shutil
import tempfile
import warnings

from ._errors import check_path
from ._model import Model
from ._quantize import quantize as _quantize

# AutoAWQ's default calibration set (a Hugging Face dataset). Nothing is downloaded here: the
# default runs on awq-cpp's embedded corpus (data/calib/), like `awq quantize` without --calib.
_DEFAULT_CALIB = "pileval"

_QUANT_CONFIG_KEYS = {"zero_point", "q_group_size", "w_bit", "version", "modules_to_not_convert"}


def _model_type(path):
    cfg = os.path.join(path, "config.json")
    if not os.path.isfile(cfg):
        raise FileNotFoundError(f"model_path: '{path}' has no config.json")
    with open(cfg, encoding="utf-8") as f:
        try:
            c = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{cfg}: malformed JSON: {e}") from None
    return c.get("model_type", "")


def _check_local(path, name):
    if isinstance(path, (str, os.PathLike)) and not os.path.exists(os.fspath(path)):
        raise FileNotFoundError(
            f"{name}: no such file or directory: '{os.fspath(path)}' (awq_cpp loads local "
            "directories only; download Hugging Face models first, e.g. with huggingface-cli)")
    return check_path(path, name)


def _parse_size(s):
    if isinstance(s, int):
        return s
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?I?B)\s*", str(s).upper())
    if not m:
        raise ValueError(f"shard_size: expected a size like '5GB', got {s!r}")
    mult = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
            "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}[m.group(2)]
    return int(float(m.group(1)) * mult)


class AutoAWQForCausalLM:
    """Factory, as in AutoAWQ: use from_pretrained (to quantize) or from_quantized (to run)."""

    def __init__(self):
        raise EnvironmentError(
            "You must instantiate AutoAWQForCausalLM with\n"
            "AutoAWQForCausalLM.from_quantized or AutoAWQForCausalLM.from_pretrained")

    @classmethod
    def from_pretrained(cls, model_path, model_type=None, torch_dtype=None,
                        trust_remote_code=True, safetensors=True, device_map="auto",
                        download_kwargs=None, low_cpu_mem_usage=True, use_cache=False,
                        **model_init_kwargs):
        """A full-precision model directory (or .gguf file) to quantize.

        Nothing is loaded yet: awq_cpp quantizes block by block from the files.
        """
        path = _check_local(model_path, "model_path")
        if not path.endswith(".gguf"):
            _model_type(path)  # config.json present and readable
        if safetensors is not True:
            raise NotImplementedError("safetensors=False: awq_cpp reads safetensors (or .gguf) only")
        return AwqModel(path, is_quantized=False)

    @classmethod
    def from_quantized(cls, quant_path, quant_filename="", max_seq_len=2048,
                       trust_remote_code=True, fuse_layers=True, use_exllama=False,
                       use_exllama_v2=False, use_ipex=False, batch_size=1, safetensors=True,
                       device_map="balanced", max_memory=None, offload_folder=None,
                       download_kwargs=None, **config_kwargs):
        """An AWQ checkpoint for inference on the CPU engine (W4 kernels).

        max_seq_len is the KV-cache size; GPU kernel choices (fuse_layers, use_exllama, ...)
        do not apply and are ignored.
        """
        path = _check_local(quant_path, "quant_path")
        if quant_filename:
            raise NotImplementedError("quant_filename: awq_cpp loads every *.safetensors shard of "
                                      "quant_path (pass quant_filename='')")
        if config_kwargs.get("max_new_tokens") is not None:
            max_seq_len = config_kwargs.pop("max_new_tokens")
        if batch_size != 1:
            raise NotImplementedError("batch_size: awq_cpp.Model runs one sequence at a time")
        m = AwqModel(path, is_quantized=True)
        m._load(max_seq_len)
        return m


class AwqModel:
    """What AutoAWQForCausalLM.from_pretrained / from_quantized return."""

    def __init__(self, path, is_quantized):
        self.model_path = path
        self.is_quantized = is_quantized
        self.quant_config = {}
        self._quantized_dir = None   # temporary checkpoint written by quantize()
        self._tmp = None
        self.model = None            # awq_cpp.Model once loaded (from_quantized)

    def _load(self, ctx):
        self.model = Model(self.model_path, ctx=ctx)

    def quantize(self, tokenizer=None, quant_config={}, calib_data=_DEFAULT_CALIB, split="train",
                 text_column="text", duo_scaling=True, export_compatible=False, apply_clip=True,
                 n_parallel_calib_samples=None, max_calib_samples=128, max_calib_seq_len=512,
                 max_chunk_memory=1024 * 1024 * 1024, quantizer_cls=None, **kwargs):
        """AutoAWQ's quantize on the awq-cpp pipeline (same result as `awq quantize`).

        tokenizer: ignored (the model directory's tokenizer.json is used, as `awq quantize`
        does). calib_data: "pileval" (AutoAWQ's default; here the embedded corpus), a path to
        a .txt/.jsonl file, or a list of strings. max_calib_samples / max_calib_seq_len are
        --n-samples / --seqlen; n_parallel_calib_samples is the number of calibration blocks
        run through a decoder block at once (memory only). Extra keyword arguments are the
        awq_cpp.quantize options (method="rtn", search_blocks=..., threads=..., ...).
        """
        if self.is_quantized:
            raise ValueError("this model is already quantized (loaded with from_quantized)")
        if not isinstance(quant_config, dict):
            raise TypeError("quant_config must be a dict like {'zero_point': True, "
                            "'q_group_size': 128, 'w_bit': 4, 'version': 'GEMM'}")
        unknown = set(quant_config) - _QUANT_CONFIG_KEYS
        if unknown:
            raise ValueError(f"quant_config: unsupported keys {sorted(unknown)} (supported: "
                             f"{sorted(_QUANT_CONFIG_KEYS)})")
        version = str(quant_config.get("version", "GEMM"))
        if version.lower() != "gemm":
            raise NotImplementedError(f"quant_config['version'] = {version!r}: awq_cpp writes the "
                                      "GEMM layout only")
        if export_compatible:
            raise NotImplementedError("export_compatible=True: awq_cpp always writes the "
                                      "quantized checkpoint")
        if quantizer_cls is not None:
            raise NotImplementedError("quantizer_cls: a custom PyTorch quantizer cannot run here")
        if isinstance(calib_data, str) and calib_data != _DEFAULT_CALIB:
            if not os.path.exists(calib_data):
                raise FileNotFoundError(
                    f"calib_data: '{calib_data}' is not a local file (awq_cpp does not download "
                    "Hugging Face datasets; pass a .txt/.jsonl path or a list of strings)")
            if split != "train" or text_column != "text":
                raise NotImplementedError("split / text_column apply to Hugging Face datasets; "
                                          "local .jsonl files use the 'text' field")
        calib = None if calib_data == _DEFAULT_CALIB else calib_data
        mods = quant_config.get("modules_to_not_convert") or kwargs.pop("modules_to_not_convert", None)
        self.quant_config = {"zero_point": quant_config.get("zero_point", True),
                             "q_group_size": quant_config.get("q_group_size", 128),
                             "w_bit": quant_config.get("w_bit", 4), "version": "gemm",
                             "modules_to_not_convert": mods}
        self._tmp = tempfile.TemporaryDirectory(prefix="awq_cpp_quant_")
        out = os.path.join(self._tmp.name, "model")
        _quantize(self.model_path, out, w_bit=self.quant_config["w_bit"],
                  group_size=self.quant_config["q_group_size"],
                  zero_point=self.quant_config["zero_point"], duo_scaling=duo_scaling,
                  clip=kwargs.pop("clip", "joint") if apply_clip else False, calib=calib,
                  n_samples=max_calib_samples, seqlen=max_calib_seq_len,
                  modules_to_not_convert=mods, chunk_blocks=n_parallel_calib_samples, **kwargs)
        self._quantized_dir = out
        self.is_quantized = True

    def save_quantized(self, save_dir, safetensors=True, shard_size="5GB"):
        """Write the checkpoint made by quantize() to save_dir (config.json with
        quantization_config, *.safetensors, tokenizer files), replacing what is there."""
        if self._quantized_dir is None:
            raise ValueError("save_quantized: call quantize() first")
        if safetensors is not True:
            raise NotImplementedError("safetensors=False: awq_cpp writes safetensors only")
        _parse_size(shard_size)  # validated; awq_cpp shards at 2 GiB (docs/PYTHON.md)
        save_dir = os.fspath(save_dir).rstrip("/") or "/"
        parent = os.path.dirname(os.path.abspath(save_dir))
        if not os.path.isdir(parent):
            raise FileNotFoundError(f"save_dir: the parent directory '{parent}' does not exist")
        os.makedirs(save_dir, exist_ok=True)
        for name in sorted(os.listdir(self._quantized_dir)):
            src = os.path.join(self._quantized_dir, name)
            dst = os.path.join(save_dir, name)
            tmp = dst + ".tmp-awq_cpp"
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)

    # ---- inference (from_quantized) ----
    def _need_model(self):
        if self.model is None:
            if self._quantized_dir is None:
                raise ValueError("not loaded for inference: use AutoAWQForCausalLM.from_quantized")
            self.model = Model(self._quantized_dir)
        return self.model

    def generate(self, input_ids=None, max_new_tokens=20, do_sample=False, temperature=None,
                 top_k=None, top_p=None, repetition_penalty=None, streamer=None, seed=0,
                 **kwargs):
        """Token ids in, token ids out (like HF generate): input_ids is a list of ids, a list of
        lists (one row), or a tensor/array with .tolist(); returns [prompt + generated]."""
        m = self._need_model()
        if input_ids is None:
            raise ValueError("input_ids is required")
        rows = input_ids.tolist() if hasattr(input_ids, "tolist") else list(input_ids)
        if rows and isinstance(rows[0], (list, tuple)):
            if len(rows) != 1:
                raise NotImplementedError("input_ids: awq_cpp generates one sequence at a time")
            rows = rows[0]
        unknown = set(kwargs) - {"attention_mask", "pad_token_id", "eos_token_id", "use_cache"}
        if unknown:
            raise NotImplementedError(f"generate: unsupported arguments {sorted(unknown)}")
        if not do_sample:
            temperature = 0.0
        g = m.generate([int(t) for t in rows], max_new_tokens, temperature=temperature,
                       top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty,
                       seed=seed, stream=True)
        if streamer is not None and not callable(streamer):
            raise NotImplementedError("streamer: pass a callable that receives each text piece "
                                      "(Hugging Face streamer objects need torch)")
        for piece in g:
            if streamer is not None:
                streamer(piece)
        return [list(rows) + g.token_ids]

    def __del__(self):
        if self._tmp is not None:
            try:
                self._tmp.cleanup()
            except Exception:
                pass
