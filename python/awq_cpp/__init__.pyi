"""Type stub of awq_cpp (the package's public API). docs/PYTHON.md has the prose."""
import os
from typing import Any, Callable, Iterator, Literal, Mapping, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

__version__: str

PathLike = Union[str, os.PathLike[str]]
Message = Union[Mapping[str, str], tuple[str, str]]
TokenIds = Union[Sequence[int], npt.NDArray[np.integer[Any]]]

def quantize(
    model: PathLike,
    out_dir: PathLike,
    *,
    w_bit: int = 4,
    group_size: int = 128,
    zero_point: bool = True,
    method: Literal["awq", "rtn"] = "awq",
    clip: Union[Literal["joint", "gram-asym", "gram", "sampled"], bool] = "joint",
    clip_aware_search: bool = True,
    grid_clip: Optional[Literal["asym", "coarse", "sym"]] = None,
    duo_scaling: bool = True,
    calib: Union[None, PathLike, Sequence[str]] = None,
    n_samples: int = 128,
    seqlen: int = 512,
    search_blocks: int = 16,
    gram_loss: bool = True,
    gqa_o_scale: bool = False,
    modules_to_not_convert: Optional[Sequence[str]] = None,
    threads: int = 0,
    overwrite: bool = False,
    report: Optional[PathLike] = None,
    progress: Union[bool, Callable[[int, int], Any]] = True,
    chunk_blocks: Optional[int] = None,
) -> dict[str, Any]:
    """Quantize `model` (HF directory or .gguf) to an AutoAWQ GEMM checkpoint in `out_dir`.

    Same pipeline and options as `awq quantize` (keyword = flag without dashes; `clip=False` is
    `--no-clip`, `duo_scaling=False` is `--no-duo-scaling`); the same options write a
    byte-identical checkpoint. `calib`: .txt/.jsonl path, list of texts, or None for the embedded
    corpus. `progress`: True (tqdm bar if installed, else text on stderr), False, or
    callable(done_blocks, total_blocks) called on the calling thread. Runs with the GIL
    released. Returns the report (the JSON of `--report`).

    Raises FileNotFoundError (model, out_dir's parent, calib), FileExistsError (out_dir exists
    without overwrite=True), TypeError / ValueError naming the argument, ValueError with the
    CLI's message for errors found in the model or data, KeyboardInterrupt on Ctrl-C (no output
    is left behind).
    """

class Server:
    """A running `awq serve` process (`serve(..., block=False)`); a context manager."""
    process: Any
    host: str
    port: int
    url: str
    base_url: str
    @property
    def log(self) -> list[str]: ...
    def running(self) -> bool: ...
    def stop(self, timeout: float = 30.0) -> int: ...
    def __enter__(self) -> "Server": ...
    def __exit__(self, *exc: Any) -> None: ...

def serve(model: PathLike, *, host: str = "127.0.0.1", port: int = 8080, parallel: int = 32,
          ctx: int = 4096, kv_cache_mb: float = 1024, threads: Optional[int] = None,
          api_key: Optional[str] = None, max_queue: int = 256,
          served_model_name: Optional[str] = None, extra_args: Sequence[str] = (),
          block: bool = True, start_timeout: float = 300.0,
          quiet: bool = False) -> Union[int, Server]:
    """`awq serve` (OpenAI-compatible, continuous batching; docs/SERVING.md) from Python.

    block=True: run until the server exits (Ctrl-C stops it cleanly); returns the exit code.
    block=False: return a `Server` once /health answers (port=0: any free port).
    Raises FileNotFoundError (model), TypeError / ValueError naming the argument,
    RuntimeError with the server's message if it exits during start-up.
    """

class PerplexityResult:
    """The fields `awq ppl --json` prints."""
    ppl: float
    ppl_stderr: float
    mean_nll: float
    tokens_scored: int
    tokens_total: int
    windows: int
    ctx: int
    protocol: str
    seconds: float

class GenerationStream(Iterator[str]):
    """Text pieces of one generation; never a partial UTF-8 character or a possible stop string."""
    token_ids: list[int]
    """Ids generated so far."""
    @property
    def stats(self) -> dict[str, Any]:
        """prompt_tokens, generated_tokens, hit_eos, hit_stop, ctx_full, finished."""
    @property
    def prompt_ids(self) -> list[int]: ...
    def __next__(self) -> str: ...

class Model:
    """A model directory (HF or AWQ checkpoint) loaded for inference, as `awq generate` loads it."""
    path: str
    def __init__(self, path: PathLike, *, ctx: int = 2048, no_w4: bool = False,
                 lm_head: Optional[Literal["q8", "f16"]] = None, threads: int = 0) -> None:
        """ctx: KV-cache size of generate/chat; no_w4: dequantize AWQ weights to fp32; lm_head:
        decode head format (None: AWQ_LM_HEAD or q8). FileNotFoundError naming `path`."""
    @property
    def vocab_size(self) -> int: ...
    @property
    def n_layers(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def ctx(self) -> int: ...
    @property
    def weights_kind(self) -> Literal["w4", "fp32"]: ...
    @property
    def eos_token_ids(self) -> list[int]: ...
    def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids, identical to HF tokenizers."""
    def detokenize(self, token_ids: TokenIds, skip_special_tokens: bool = False) -> str: ...
    def apply_chat_template(self, messages: Sequence[Message],
                            add_generation_prompt: bool = True) -> str:
        """The prompt the model's chat template renders."""
    def generate(self, prompt: Union[str, TokenIds], max_new_tokens: int = 128, *,
                 temperature: Optional[float] = None, top_k: Optional[int] = None,
                 top_p: Optional[float] = None, min_p: Optional[float] = None,
                 repetition_penalty: Optional[float] = None, seed: int = 0,
                 stop: Union[None, str, Sequence[str]] = None, chat: bool = False,
                 stream: bool = False) -> Union[str, GenerationStream]:
        """`awq generate -p PROMPT -n MAX_NEW_TOKENS`: the text, or an iterator of pieces with
        stream=True. Unset sampling parameters follow generation_config.json (greedy without)."""
    def chat(self, messages: Sequence[Message], max_new_tokens: int = 512, *,
             temperature: Optional[float] = None, top_k: Optional[int] = None,
             top_p: Optional[float] = None, min_p: Optional[float] = None,
             repetition_penalty: Optional[float] = None, seed: int = 0,
             stream: bool = False) -> Union[str, GenerationStream]:
        """The assistant reply to `messages` (the model's chat template)."""
    def perplexity(self, text: str, ctx: int = 2048,
                   protocol: Literal["autoawq", "llamacpp"] = "autoawq",
                   max_windows: int = -1) -> PerplexityResult:
        """`awq ppl MODEL FILE --ctx CTX --protocol PROTOCOL` on `text`."""
    def logits(self, token_ids: TokenIds) -> npt.NDArray[np.float32]:
        """Logits [len(token_ids), vocab_size], float32, wrapping the C++ buffer (no copy)."""

class AwqModel:
    """What AutoAWQForCausalLM.from_pretrained / from_quantized return."""
    model_path: str
    is_quantized: bool
    quant_config: dict[str, Any]
    model: Optional[Model]
    def quantize(self, tokenizer: Any = None, quant_config: Mapping[str, Any] = {},
                 calib_data: Union[str, Sequence[str]] = "pileval", split: str = "train",
                 text_column: str = "text", duo_scaling: bool = True,
                 export_compatible: bool = False, apply_clip: bool = True,
                 n_parallel_calib_samples: Optional[int] = None, max_calib_samples: int = 128,
                 max_calib_seq_len: int = 512, max_chunk_memory: int = 1024 * 1024 * 1024,
                 quantizer_cls: Any = None, **kwargs: Any) -> None:
        """AutoAWQ's quantize on the awq-cpp pipeline; see docs/PYTHON.md for the mapping.
        Unsupported settings (version other than GEMM, export_compatible, quantizer_cls, Hugging
        Face dataset names) raise NotImplementedError / FileNotFoundError."""
    def save_quantized(self, save_dir: PathLike, safetensors: bool = True,
                       shard_size: Union[str, int] = "5GB") -> None: ...
    def generate(self, input_ids: Any = None, max_new_tokens: int = 20, do_sample: bool = False,
                 temperature: Optional[float] = None, top_k: Optional[int] = None,
                 top_p: Optional[float] = None, repetition_penalty: Optional[float] = None,
                 streamer: Optional[Callable[[str], Any]] = None, seed: int = 0,
                 **kwargs: Any) -> list[list[int]]:
        """Token ids in (one row), [prompt + generated ids] out."""

class AutoAWQForCausalLM:
    """AutoAWQ's factory. Local directories only (nothing is downloaded)."""
    @classmethod
    def from_pretrained(cls, model_path: PathLike, model_type: Optional[str] = None,
                        torch_dtype: Any = None, trust_remote_code: bool = True,
                        safetensors: bool = True, device_map: Any = "auto",
                        download_kwargs: Any = None, low_cpu_mem_usage: bool = True,
                        use_cache: bool = False, **model_init_kwargs: Any) -> AwqModel: ...
    @classmethod
    def from_quantized(cls, quant_path: PathLike, quant_filename: str = "",
                       max_seq_len: int = 2048, trust_remote_code: bool = True,
                       fuse_layers: bool = True, use_exllama: bool = False,
                       use_exllama_v2: bool = False, use_ipex: bool = False,
                       batch_size: int = 1, safetensors: bool = True,
                       device_map: Any = "balanced", max_memory: Any = None,
                       offload_folder: Any = None, download_kwargs: Any = None,
                       **config_kwargs: Any) -> AwqModel: ...
