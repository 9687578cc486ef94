"""awq_cpp.Model: the inference engine (what `awq generate`, `awq chat` and `awq ppl` run)."""
import dataclasses
import os

from . import _native
from ._errors import check_bool, check_int, check_path


@dataclasses.dataclass(frozen=True)
class PerplexityResult:
    """The numbers `awq ppl --json` prints."""
    ppl: float
    ppl_stderr: float
    mean_nll: float
    tokens_scored: int
    tokens_total: int
    windows: int
    ctx: int
    protocol: str
    seconds: float


class GenerationStream:
    """Iterator over the text pieces of one generation (Model.generate(..., stream=True)).

    Each item is a str; `token_ids` holds the ids generated so far and `stats` the counts
    (prompt_tokens, generated_tokens, hit_eos, hit_stop, ctx_full). Only the newest
    generation of a Model can run: starting another one makes older iterators raise.
    """

    def __init__(self, gen):
        self._gen = gen
        self.token_ids = []

    def __iter__(self):
        return self

    def __next__(self):
        r = self._gen.next()
        if r is None:
            raise StopIteration
        text, ids = r
        self.token_ids.extend(ids)
        return text

    @property
    def stats(self):
        return self._gen.stats()

    @property
    def prompt_ids(self):
        return self._gen.prompt_ids


def _messages(messages):
    out = []
    if not isinstance(messages, (list, tuple)):
        raise TypeError("messages must be a list of {'role': ..., 'content': ...} dicts")
    for i, m in enumerate(messages):
        if isinstance(m, dict):
            if "role" not in m or "content" not in m:
                raise ValueError(f"messages[{i}] needs 'role' and 'content'")
            role, content = m["role"], m["content"]
        elif isinstance(m, (list, tuple)) and len(m) == 2:
            role, content = m
        else:
            raise TypeError(f"messages[{i}] must be a dict with 'role' and 'content'")
        if not isinstance(role, str) or not isinstance(content, str):
            raise TypeError(f"messages[{i}]: role and content must be str")
        out.append((role, content))
    return out


class Model:
    """A model directory (HF fp32/fp16/bf16 or AWQ checkpoint) loaded for inference.

    Loaded as `awq generate` loads it: AWQ checkpoints keep their 4-bit weights for the W4
    kernels (no_w4=True dequantizes to fp32); lm_head: None (AWQ_LM_HEAD or q8), "q8" or
    "f16" for the decode head. ctx is the KV-cache size (tokens) of generate/chat.
    """

    def __init__(self, path, *, ctx=2048, no_w4=False, lm_head=None, threads=0):
        path = check_path(path, "path", kind="dir")
        check_int(ctx, "ctx", minimum=1)
        check_bool(no_w4, "no_w4")
        check_int(threads, "threads", minimum=0)
        if lm_head not in (None, "q8", "f16"):
            raise ValueError(f"lm_head {lm_head!r} is not supported (expected None, 'q8' or 'f16')")
        self._m = _native.load(path, ctx, no_w4, lm_head or "", threads)
        self.path = path

    # ---- properties ----
    @property
    def vocab_size(self):
        return self._m.vocab_size

    @property
    def n_layers(self):
        return self._m.n_layers

    @property
    def hidden_size(self):
        return self._m.hidden_size

    @property
    def ctx(self):
        return self._m.ctx

    @property
    def weights_kind(self):
        """'w4' when the linears run on the W4 kernels, else 'fp32'."""
        return self._m.weights_kind

    @property
    def eos_token_ids(self):
        return list(self._m.eos_ids)

    # ---- tokenizer ----
    def tokenize(self, text, add_special_tokens=True):
        """Token ids of `text`, identical to HF tokenizers' encode."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return self._m.encode(text, add_special_tokens)

    def detokenize(self, token_ids, skip_special_tokens=False):
        return self._m.decode(self._ids(token_ids, "token_ids"), skip_special_tokens)

    def apply_chat_template(self, messages, add_generation_prompt=True):
        """The prompt text the chat template renders for `messages`."""
        return self._m.render_chat(_messages(messages), add_generation_prompt)

    @staticmethod
    def _ids(token_ids, name):
        try:
            ids = [int(t) for t in (token_ids.tolist() if hasattr(token_ids, "tolist") else token_ids)]
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a sequence of ints") from None
        return ids

    # ---- generation ----
    def generate(self, prompt, max_new_tokens=128, *, temperature=None, top_k=None, top_p=None,
                 min_p=None, repetition_penalty=None, seed=0, stop=None, chat=False,
                 stream=False):
        """Complete `prompt` (str, or a list of token ids) like `awq generate -p PROMPT -n N`.

        Sampling parameters left None keep the model's generation_config.json values (greedy
        when it has none). chat=True wraps the prompt as one user turn (`--chat`). stop: a str
        or list of str that ends generation (not included). Returns the text, or with
        stream=True a GenerationStream of text pieces.
        """
        check_int(max_new_tokens, "max_new_tokens", minimum=0)
        if isinstance(prompt, str):
            if chat:
                ids = self._m.encode(self._m.render_chat([("user", prompt)], True), False)
            else:
                ids = self._m.encode(prompt, True)
        else:
            if chat:
                raise ValueError("chat=True needs the prompt as text, not token ids")
            ids = self._ids(prompt, "prompt")
        return self._start(ids, max_new_tokens, temperature, top_k, top_p, min_p,
                           repetition_penalty, seed, stop, stream)

    def chat(self, messages, max_new_tokens=512, *, temperature=None, top_k=None, top_p=None,
             min_p=None, repetition_penalty=None, seed=0, stream=False):
        """The assistant's reply to `messages` ([{'role': 'user', 'content': ...}, ...]),
        rendered with the model's chat template (as `awq chat` does for its history)."""
        check_int(max_new_tokens, "max_new_tokens", minimum=0)
        text = self._m.render_chat(_messages(messages), True)
        ids = self._m.encode(text, False)
        if len(ids) + 1 >= self.ctx:
            raise ValueError(f"messages: conversation has {len(ids)} tokens, context is "
                             f"{self.ctx} (raise ctx)")
        return self._start(ids, min(max_new_tokens, self.ctx - len(ids)), temperature, top_k,
                           top_p, min_p, repetition_penalty, seed, None, stream)

    def _start(self, ids, n, temperature, top_k, top_p, min_p, rep, seed, stop, stream):
        check_int(seed, "seed", minimum=0)
        if stop is None:
            stops = []
        elif isinstance(stop, str):
            stops = [stop]
        else:
            stops = list(stop)
            if not all(isinstance(s, str) for s in stops):
                raise TypeError("stop must be a str or a list of str")
        gen = GenerationStream(_native.start_generation(
            self._m, ids, n, temperature, top_k, top_p, min_p, rep, seed, stops))
        if stream:
            return gen
        return "".join(gen)

    # ---- evaluation ----
    def perplexity(self, text, ctx=2048, protocol="autoawq", max_windows=-1):
        """Perplexity of `text` like `awq ppl MODEL FILE --ctx CTX --protocol PROTOCOL`.

        protocol: "autoawq" (every token after the first of each window) or "llamacpp"
        (second half of each window). Uses the exact lm_head, as `awq ppl` does.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        check_int(ctx, "ctx")
        check_int(max_windows, "max_windows")
        if protocol not in ("autoawq", "llamacpp"):
            raise ValueError(f"protocol {protocol!r} is not supported (expected 'autoawq' or "
                             "'llamacpp')")
        ids = self._m.encode(text, True)
        d = self._m.perplexity(ids, ctx, protocol, max_windows)
        return PerplexityResult(**d)

    def logits(self, token_ids):
        """Logits [len(token_ids), vocab_size] (float32 NumPy array) of one sequence.

        The forward pass of the model as loaded (W4 kernels for AWQ checkpoints) with the exact
        lm_head; the array wraps the C++ buffer (no copy).
        """
        return self._m.logits(self._ids(token_ids, "token_ids"))

    def __repr__(self):
        return (f"awq_cpp.Model({self.path!r}, {self.weights_kind}, layers={self.n_layers}, "
                f"hidden={self.hidden_size}, vocab={self.vocab_size})")
