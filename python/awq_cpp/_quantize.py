"""awq_cpp.quantize: `awq quantize MODEL OUT_DIR [options]` as a function."""
import json
import os
import sys
import tempfile

from . import _native
from ._errors import check_bool, check_int, check_path

_CLIP_MODES = ("joint", "gram-asym", "gram", "sampled")


def _progress_callback(progress, label):
    """A callable(done, total) for `progress`, and a closer to call at the end."""
    if callable(progress):
        return progress, lambda: None
    if not progress:
        return None, lambda: None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return "native", lambda: None
    bar = {}

    def cb(done, total):
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=label, unit="blk")
        b = bar["bar"]
        b.update(done - b.n)

    def close():
        if "bar" in bar:
            bar["bar"].close()

    return cb, close


def _write_calib_jsonl(texts, tmpdir):
    path = os.path.join(tmpdir, "calib.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"calib[{i}] must be a str, got {type(t).__name__}")
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    return path


def quantize(model, out_dir, *, w_bit=4, group_size=128, zero_point=True, method="awq",
             clip="joint", clip_aware_search=True, grid_clip=None, grid_stride=None, duo_scaling=True, calib=None, n_samples=128,
             seqlen=512, search_blocks=16, gram_loss=True, gqa_o_scale=False,
             modules_to_not_convert=None, threads=0, overwrite=False, report=None,
             progress=True, chunk_blocks=None, resume=False, resume_state=True):
    """Quantize `model` (HF directory or .gguf) to an AutoAWQ GEMM checkpoint in `out_dir`.

    The same pipeline and options as `awq quantize` (each keyword is the CLI flag without
    dashes): same inputs and options give a byte-identical checkpoint. `clip` is the clipping
    search ("joint", "gram-asym", "gram", "sampled") or False for `--no-clip`; `grid_clip` is
    `--grid-clip` ("asym", "coarse" or "sym"; None: the CLI's default); `grid_stride` is
    `--grid-stride` (an int >= 1; None: the CLI's default); `calib` is a
    .txt/.jsonl path, a list of strings, or None for the embedded default corpus; `report` a
    path for the JSON report. `progress`: True (a tqdm bar when tqdm is installed, else the
    CLI's text progress on stderr), False, or a callable(done_blocks, total_blocks).

    resume / resume_state: `--resume` / `--no-resume-state` (the state of an interrupted run is
    kept in OUT_DIR.resume, as the CLI keeps it).

    Returns the report as a dict. Ctrl-C raises KeyboardInterrupt and leaves no output
    directory (only OUT_DIR.resume unless resume_state=False).
    """
    model = check_path(model, "model")
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir must be a path (str or os.PathLike), got {type(out_dir).__name__}")
    out_dir = os.fspath(out_dir)
    parent = os.path.dirname(os.path.abspath(out_dir))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"out_dir: the parent directory '{parent}' does not exist "
                                "(create it first)")
    check_int(w_bit, "w_bit")
    check_int(group_size, "group_size")
    check_bool(zero_point, "zero_point")
    if method not in ("awq", "rtn"):
        raise ValueError(f"method {method!r} is not supported (expected 'awq' or 'rtn')")
    if clip is True:
        clip = "joint"
    if clip is not False and clip not in _CLIP_MODES:
        raise ValueError(f"clip {clip!r} is not supported (expected one of {', '.join(_CLIP_MODES)}"
                         " or False)")
    if grid_clip is not None and grid_clip not in ("asym", "coarse", "sym"):
        raise ValueError(f"grid_clip {grid_clip!r} is not supported (expected 'asym', 'coarse' or 'sym')")
    for name, v in (("clip_aware_search", clip_aware_search), ("duo_scaling", duo_scaling),
                    ("gram_loss", gram_loss), ("gqa_o_scale", gqa_o_scale),
                    ("overwrite", overwrite), ("resume", resume),
                    ("resume_state", resume_state)):
        check_bool(v, name)
    if grid_stride is not None:
        check_int(grid_stride, "grid_stride", minimum=1)
    check_int(n_samples, "n_samples", minimum=1)
    check_int(seqlen, "seqlen", minimum=1)
    check_int(search_blocks, "search_blocks", minimum=0)
    check_int(threads, "threads", minimum=0)
    if chunk_blocks is not None:
        check_int(chunk_blocks, "chunk_blocks", minimum=1)
    mods = list(modules_to_not_convert or [])
    for m in mods:
        if not isinstance(m, str):
            raise TypeError(f"modules_to_not_convert entries must be str, got {type(m).__name__}")
    if report is not None:
        report = os.fspath(report)
    if os.path.exists(out_dir) and not overwrite:
        raise FileExistsError(f"out_dir: '{out_dir}' already exists (pass overwrite=True to "
                              "replace it)")

    with tempfile.TemporaryDirectory(prefix="awq_cpp_calib_") as tmp:
        if calib is None:
            calib_path = ""
        elif isinstance(calib, (str, os.PathLike)):
            calib_path = check_path(calib, "calib", kind="file")
        elif isinstance(calib, (list, tuple)):
            if not calib:
                raise ValueError("calib: the list of calibration texts is empty")
            calib_path = _write_calib_jsonl(calib, tmp)
        else:
            raise TypeError(f"calib must be None, a path or a list of str, got {type(calib).__name__}")
        cb, close = _progress_callback(progress, method)
        opts = {
            "w_bit": w_bit, "group_size": group_size, "zero_point": zero_point, "method": method,
            "clip": clip is not False, "clip_mode": clip if clip is not False else "joint",
            "clip_aware_search": clip_aware_search, "duo_scaling": duo_scaling,
            **({"grid_clip": grid_clip} if grid_clip is not None else {}),
            **({"grid_stride": grid_stride} if grid_stride is not None else {}),
            "calib": calib_path, "n_samples": n_samples, "seqlen": seqlen,
            "search_blocks": search_blocks, "gram_loss": gram_loss, "gqa_o_scale": gqa_o_scale,
            "modules_to_not_convert": mods, "threads": threads, "overwrite": overwrite,
            "native_progress": cb == "native", "chunk_blocks": chunk_blocks,
            "resume": resume, "resume_state": resume_state,
        }
        try:
            rep = json.loads(_native.quantize(model, out_dir, opts, None if cb == "native" else cb))
        finally:
            close()
    for w in rep["warnings"]:
        sys.stderr.write(f"warning: {w}\n")
    if report is not None:
        with open(report, "w", encoding="utf-8") as f:
            json.dump(rep, f, indent=1)
            f.write("\n")
    return rep
