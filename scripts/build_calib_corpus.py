#!/usr/bin/env python3
"""Build awq-cpp's embedded default AWQ calibration corpus.

Writes data/calib/default.jsonl: one JSON object per line,
    {"text": ..., "source": "<package>:<path>", "license": "<SPDX-ish>"}
Each record is a coherent passage (paragraph-level chunk) of roughly
800-1800 characters of prose or 800-1500 characters of code.  The corpus is
used only to collect activation statistics for quantization (calibration);
it is never used for evaluation.  WikiText / Wikipedia text is deliberately
NOT used (WikiText-2 is the project's evaluation set), and this script never
reads /work/shared.

Mix by kind (by bytes of text, approximately):
    ~40% technical prose  : debian-reference-en, python3.11-doc (rST sources
                            of the tutorial / HOWTOs / FAQ), GNU info manuals
    ~30% narrative/dialog : Project Gutenberg etexts of "Alice's Adventures in
                            Wonderland", "As You Like It" and "Paradise Lost"
                            (public domain) shipped as test data in the Brotli
                            sdist on PyPI (tests/testdata/*.txt)
    ~30% source code      : Python stdlib (libpython3.11-minimal /
                            libpython3.11-stdlib), C (Brotli sdist c/),
                            shell (bash-doc examples), JavaScript (Sphinx
                            static files shipped in python3.11-doc)

Inputs (this script installs nothing; install them first):

    apt-get update
    apt-get install -y --no-install-recommends \\
        debian-reference-en python3.11-doc bash-doc libpython3.11-stdlib \\
        coreutils grep sed gzip diffutils          # info manuals (usually present)
    pip download --no-deps --no-binary :all: brotli==1.2.1 -d ~/.cache/awq-calib

Versions used for the committed default.jsonl (Debian 12 "bookworm"):
    debian-reference-en 2.100, python3.11-doc 3.11.2-6+deb12u9,
    bash-doc 5.2.15-2, libpython3.11-minimal/-stdlib 3.11.2-6+deb12u*,
    coreutils 9.1-1, grep 3.8-5, sed 4.9-1, gzip 1.12-1, diffutils 1:3.8-4,
    brotli-1.2.1.tar.gz (PyPI sdist, sha256 pinned below).
Other versions produce a valid but not byte-identical corpus; the script
prints a warning for each version mismatch.

Regenerate (byte-identical given the versions above):

    python3 scripts/build_calib_corpus.py \\
        --brotli-sdist ~/.cache/awq-calib/brotli-1.2.1.tar.gz \\
        --out data/calib/default.jsonl

Only the Python standard library is used; ordering is fully deterministic
(sorted file lists, fixed seed, no dependence on hash randomisation).
"""

import argparse
import fnmatch
import gzip
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import textwrap

SEED = 20240611
BROTLI_SDIST_SHA256 = "02b2f7b5a83485efe448a44ddf7983def05c3bb1dcf917d4f7154070260e13de"

EXPECTED_VERSIONS = {
    "debian-reference-en": "2.100",
    "python3.11-doc": "3.11.2-6+deb12u9",
    "bash-doc": "5.2.15-2",
    "libpython3.11-minimal": "3.11.2-6+deb12u9",
    "libpython3.11-stdlib": "3.11.2-6+deb12u9",
    "coreutils": "9.1-1",
    "grep": "3.8-5",
    "sed": "4.9-1",
    "gzip": "1.12-1",
    "diffutils": "1:3.8-4",
}

PROSE_LO, PROSE_HI = 800, 1800
CODE_LO, CODE_HI = 800, 1500

# Byte quotas per source (text bytes, UTF-8).  Total ~480 KB.
QUOTAS = {
    # prose (~40%)
    "debian-reference": 72_000,
    "python-doc": 70_000,
    "gnu-info": 50_000,
    # narrative / dialogue (~30%)
    "alice": 58_000,
    "asyoulik": 58_000,
    "paradise-lost": 28_000,
    # code (~30%)
    "python-code": 62_000,
    "c-code": 42_000,
    "shell-code": 26_000,
    "js-code": 14_000,
}


# ----------------------------------------------------------------- helpers

def warn(msg):
    print("warning: " + msg, file=sys.stderr)


def check_versions():
    for pkg, want in sorted(EXPECTED_VERSIONS.items()):
        try:
            got = subprocess.run(
                ["dpkg-query", "-W", "-f=${Version}", pkg],
                capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            got = ""
        if got != want:
            warn("%s version %r != %r used for the committed corpus; output "
                 "may differ" % (pkg, got or "not installed", want))


def norm_ws(s):
    """Collapse runs of spaces/tabs inside a prose line."""
    return re.sub(r"[ \t]+", " ", s).strip()


def split_sentences(p, hi):
    """Split an over-long prose paragraph at sentence boundaries."""
    parts = re.split(r"(?<=[.!?;:])\s+(?=\S)", p)
    out, cur = [], ""
    for s in parts:
        if cur and len(cur) + 1 + len(s) > hi:
            out.append(cur)
            cur = s
        else:
            cur = (cur + " " + s) if cur else s
    if cur:
        out.append(cur)
    return [o for o in out if len(o) <= hi]


def split_lines(block, hi):
    """Split an over-long verbatim block at line boundaries."""
    out, cur = [], []
    n = 0
    for line in block.split("\n"):
        if cur and n + len(line) + 1 > hi:
            out.append("\n".join(cur))
            cur, n = [], 0
        cur.append(line)
        n += len(line) + 1
    if cur:
        out.append("\n".join(cur))
    return [o for o in out if len(o) <= hi and o.strip()]


def pack(units, lo, hi, rng, verbatim=False):
    """Greedily pack paragraph units into chunks of lo..hi characters.

    Each chunk's target length is drawn from the seeded rng so that the
    length distribution is varied.  Chunks shorter than lo are dropped (at
    the end of a section) rather than merged across section boundaries.
    """
    pieces = []
    for u in units:
        if not u.strip():
            continue
        if len(u) > hi:
            pieces.extend(split_lines(u, (lo + hi) // 2)
                          if (verbatim or "\n" in u)
                          else split_sentences(u, hi))
        else:
            pieces.append(u)
    out, cur, n = [], [], 0
    target = rng.randint(lo, lo + (hi - lo) // 2)
    for p in pieces:
        add = len(p) + (2 if cur else 0)
        if cur and n + add > hi:
            if n >= lo:
                out.append("\n\n".join(cur))
            cur, n = [], 0
            add = len(p)
            target = rng.randint(lo, lo + (hi - lo) // 2)
        cur.append(p)
        n += add
        if n >= target:
            out.append("\n\n".join(cur))
            cur, n = [], 0
            target = rng.randint(lo, lo + (hi - lo) // 2)
    if cur and n >= lo:
        out.append("\n\n".join(cur))
    return out


def paragraphs(text):
    return [p for p in re.split(r"\n[ \t]*\n", text) if p.strip()]


def unwrap_or_keep(par, indent_code=5):
    """Unwrap a hard-wrapped prose paragraph; keep indented blocks verbatim."""
    lines = par.split("\n")
    ind = [len(l) - len(l.lstrip(" ")) for l in lines if l.strip()]
    if not ind:
        return ""
    base = min(ind)
    if max(ind) - base >= indent_code or any(
            re.match(r"\s*([#$>]|\.\.\.|\+|\|)", l) for l in lines):
        return textwrap.dedent(par).strip("\n")
    return norm_ws(" ".join(l.strip() for l in lines))


# ----------------------------------------------------------------- prose

def src_debian_reference(rng):
    path = "/usr/share/debian-reference/debian-reference.en.txt.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        text = f.read().replace("\u00a0", " ")
    start = text.index("\nChapter 1. ")
    text = text[start:]
    # sections start with a heading in column 0
    sections = re.split(r"\n(?=(?:Chapter \d+\.|Appendix [A-Z]\.|"
                        r"\d+(?:\.\d+)+\.|[A-Z](?:\.\d+)+\.) )", text)
    chunks = []
    for sec in sections:
        sec = sec.strip("\n")
        if not sec:
            continue
        head, _, body = sec.partition("\n")
        units = [norm_ws(head)]
        for par in paragraphs(body):
            s = par.strip()
            # drop tables, table captions, footnote markers-only lines
            if s.startswith(("+--", "|")) or re.match(r"Table [A-Z0-9.]+\.", s):
                continue
            if re.search(r"^\s*[|+]", par, re.M) and "|" in par:
                continue
            u = unwrap_or_keep(par)
            if u:
                units.append(u)
        if len(units) < 2:
            continue
        for c in pack(units, PROSE_LO, PROSE_HI, rng):
            chunks.append((c, "debian-reference-en:" + path))
    return chunks


RST_KEEP_BODY = {"note", "warning", "seealso", "versionadded",
                 "versionchanged", "deprecated", "important", "tip",
                 "impl-detail", "admonition", "hint", "attention", "caution"}


def clean_rst_inline(s):
    s = re.sub(r":[\w:.-]+:`~?!?([^`<]*?)\s*<[^`>]*>`", r"\1", s)
    s = re.sub(r":[\w:.-]+:`~?!?([^`]*)`", r"\1", s)
    s = re.sub(r"``([^`]+)``", r"\1", s)
    s = re.sub(r"`([^`<]+?)\s*<[^`>]+>`__?", r"\1", s)
    s = re.sub(r"`([^`]+)`_{1,2}", r"\1", s)
    s = re.sub(r"`([^`]+)`", r"\1", s)
    s = re.sub(r"\*\*([^*]+)\*\*", r"\1", s)
    s = re.sub(r"(?<![\w*])\*(\S[^*]*?\S|\S)\*(?![\w*])", r"\1", s)
    s = re.sub(r"\[#\w*\]_", "", s)
    s = s.replace("\\ ", "")
    return s


def rst_to_units(text):
    lines = text.split("\n")
    out = []      # list of (kind, lines) blocks
    i, n = 0, len(lines)
    para = []

    def flush():
        if para:
            out.append(("p", list(para)))
            para.clear()

    while i < n:
        line = lines[i]
        st = line.strip()
        m = re.match(r"\.\.\s+([\w:-]+)::(.*)$", st) if not line.startswith(" ") else None
        if not line.startswith(" ") and st.startswith(".."):
            flush()
            name = m.group(1) if m else None
            arg = m.group(2).strip() if m else ""
            i += 1
            body = []
            while i < n and (not lines[i].strip() or lines[i].startswith(" ")):
                body.append(lines[i])
                i += 1
            body = [b for b in body if not re.match(r"\s+:[\w-]+:", b)]
            if name in RST_KEEP_BODY:
                inner = textwrap.dedent("\n".join(body)).strip("\n")
                if arg and name not in ("versionadded", "versionchanged",
                                        "deprecated"):
                    inner = arg + "\n\n" + inner
                elif arg:
                    inner = "New/changed in version " + arg + ". " + inner
                if inner.strip():
                    for kind, blk in rst_to_units(inner):
                        out.append((kind, blk))
            elif name in ("code-block", "sourcecode", "code", "doctest",
                          "testcode"):
                code = textwrap.dedent("\n".join(body)).strip("\n")
                if code:
                    out.append(("v", code.split("\n")))
            continue
        if re.match(r"^([=\-~*^\"'#+`])\1{2,}\s*$", st):
            # section adornment: drop, title text (if any) is its own para
            flush()
            i += 1
            continue
        if not st:
            flush()
            i += 1
            continue
        if line.startswith(" ") and not para:
            # literal / indented block
            blk = []
            while i < n and (not lines[i].strip() or lines[i].startswith(" ")):
                blk.append(lines[i])
                i += 1
            code = textwrap.dedent("\n".join(blk)).strip("\n")
            if code:
                out.append(("v", code.split("\n")))
            continue
        para.append(line)
        i += 1
    flush()
    return out


def src_python_doc(rng):
    root = "/usr/share/doc/python3.11/html/_sources"
    files = []
    for sub in ("tutorial", "howto", "faq"):
        d = os.path.join(root, sub)
        for fn in sorted(os.listdir(d)):
            if fn.endswith(".rst.txt") and fn != "index.rst.txt":
                files.append(os.path.join(d, fn))
    chunks = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        units = []
        for kind, blk in rst_to_units(text):
            if kind == "p":
                s = clean_rst_inline(" ".join(l.strip() for l in blk))
                s = norm_ws(s)
                if s.endswith("::"):
                    s = s[:-1]
                s = s.replace(" ::", ":") if s.endswith(" :") else s
                if s in (":", ""):
                    continue
                # headings in rST headings are short lines followed by
                # adornment which we dropped; fine as their own unit
                units.append(s)
            else:
                v = "\n".join(blk)
                if not v.lstrip().startswith(">>>"):
                    v = re.sub(r"``([^`]+)``", r"\1", v)
                units.append(v)
        # strip headings that are the only thing before the next heading
        for c in pack(units, PROSE_LO, PROSE_HI, rng):
            rel = os.path.relpath(path, "/")
            chunks.append((c, "python3.11-doc:/" + rel))
    return chunks


INFO_MANUALS = ["coreutils", "grep", "sed", "gzip", "diffutils"]


def src_gnu_info(rng):
    chunks = []
    for man in INFO_MANUALS:
        path = "/usr/share/info/%s.info.gz" % man
        with gzip.open(path, "rt", encoding="utf-8") as f:
            text = f.read()
        nodes = text.split("\x1f")
        for node in nodes:
            node = node.strip("\n")
            if not node.startswith("File: "):
                continue
            header, _, body = node.partition("\n")
            m = re.search(r"Node: ([^,\n]+)", header)
            name = m.group(1).strip() if m else ""
            if (name == "Top" or "Index" in name or "Free Documentation"
                    in name or "Copying" in name or "Concept" in name):
                continue
            # drop menus
            body = re.split(r"\n\* Menu:\n", body)[0]
            units = []
            for par in paragraphs(body):
                s = par.strip()
                if re.match(r"^[*=\-.]{3,}$", s.split("\n")[-1].strip()) and \
                        s.count("\n") == 1:
                    units.append(norm_ws(s.split("\n")[0]))  # heading
                    continue
                if s.startswith("* ") and "::" in s:
                    continue
                u = unwrap_or_keep(par)
                if u:
                    units.append(u)
            for c in pack(units, PROSE_LO, PROSE_HI, rng):
                chunks.append((c, "%s:%s#%s" % (man, path, name)))
    return chunks


# ----------------------------------------------------------------- narrative

def read_member(tar, name):
    return tar.extractfile(tar.getmember(name)).read().decode("latin-1")


def src_alice(tar, prefix, rng):
    name = prefix + "tests/testdata/alice29.txt"
    text = read_member(tar, name).replace("\r", "")
    text = text[:text.rindex("THE END")]
    # chapters
    chapters = re.split(r"\n\s*CHAPTER [IVXL]+\n", text)[1:]
    chunks = []
    for ch in chapters:
        units = []
        for par in paragraphs(ch):
            lines = par.split("\n")
            ind = [len(l) - len(l.lstrip()) for l in lines if l.strip()]
            if len(lines) > 1 and min(ind) >= 4 and max(ind) > 4:
                # verse ("How doth the little crocodile...")
                units.append(textwrap.dedent(par).strip("\n").replace("`", "'"))
            else:
                s = norm_ws(" ".join(l.strip() for l in lines))
                # Millennium Fulcrum edition uses `...' quotes
                s = s.replace("`", "'")
                units.append(s)
        for c in pack(units, PROSE_LO, PROSE_HI, rng):
            chunks.append((c, "brotli:" + name))
    return chunks


def src_asyoulik(tar, prefix, rng):
    name = prefix + "tests/testdata/asyoulik.txt"
    text = read_member(tar, name).replace("\r", "")
    text = text[text.index("\nACT I\n") + 1:]
    scenes = re.split(r"\n(?=ACT [IVX]+\n)|\n(?=SCENE [IVX]+\t)", text)
    chunks = []
    for sc in scenes:
        units = []
        for par in paragraphs(sc):
            lines = par.split("\n")
            first = lines[0]
            if "\t" in first and not first.startswith("\t"):
                spk, _, rest = first.partition("\t")
                if spk.startswith(("ACT ", "SCENE ")):
                    units.append(norm_ws(spk) + ". " + norm_ws(
                        " ".join([rest] + lines[1:])))
                    continue
                body = [rest.strip()] + [l.strip() for l in lines[1:]]
                units.append(spk.strip() + ": " + "\n".join(body).strip())
            else:
                s = "\n".join(l.strip() for l in lines).strip()
                if s:
                    units.append(s)
        for c in pack(units, PROSE_LO, PROSE_HI, rng):
            chunks.append((c, "brotli:" + name))
    return chunks


def src_paradise_lost(tar, prefix, rng):
    name = prefix + "tests/testdata/plrabn12.txt"
    text = read_member(tar, name).replace("\r", "")
    books = re.split(r"\n\s*(?=Book [IVX]+\s*\n)", text)[1:]
    chunks = []
    for bk in books:
        head, _, body = bk.partition("\n")
        lines = [l.strip() for l in body.split("\n")]
        # verse paragraphs are separated by blank lines; keep line breaks
        units = [head.strip()]
        for par in re.split(r"\n\s*\n", "\n".join(lines)):
            if par.strip():
                units.append(par.strip())
        for c in pack(units, PROSE_LO, PROSE_HI, rng, verbatim=True):
            chunks.append((c, "brotli:" + name))
    return chunks


# ----------------------------------------------------------------- code

def code_blocks(text):
    """Split source into top-level blank-line separated blocks."""
    text = text.replace("\t", "    ") if False else text
    text = re.sub(r"[ \t]+\n", "\n", text)
    blocks = re.split(r"\n\s*\n", text.strip("\n"))
    return [b for b in blocks if b.strip()]


def pack_code(text, rng):
    """Pack blank-line separated blocks, keeping the original separators."""
    text = re.sub(r"[ \t]+\n", "\n", text).strip("\n")
    parts = re.split(r"(\n(?:[ \t]*\n)+)", text)
    blocks = []  # (separator_before, block)
    sep = ""
    for i, p in enumerate(parts):
        if i % 2:
            sep = p
            continue
        if len(p) > CODE_HI:
            for j, q in enumerate(split_lines(p, (CODE_LO + CODE_HI) // 2)):
                blocks.append((sep if j == 0 else "\n", q))
        else:
            blocks.append((sep, p))
    out, cur = [], ""
    target = rng.randint(CODE_LO, CODE_LO + (CODE_HI - CODE_LO) // 2)
    for sep, b in blocks:
        if cur and len(cur) + len(sep) + len(b) > CODE_HI:
            if len(cur) >= CODE_LO:
                out.append(cur)
            cur = ""
            target = rng.randint(CODE_LO, CODE_LO + (CODE_HI - CODE_LO) // 2)
        cur = (cur + sep + b) if cur else b
        if len(cur) >= target:
            out.append(cur)
            cur = ""
            target = rng.randint(CODE_LO, CODE_LO + (CODE_HI - CODE_LO) // 2)
    if len(cur) >= CODE_LO:
        out.append(cur)
    return out


def src_python_code(rng):
    root = "/usr/lib/python3.11"
    owner = {}
    for pkg in ("libpython3.11-minimal", "libpython3.11-stdlib"):
        lst = "/var/lib/dpkg/info/%s:amd64.list" % pkg
        if not os.path.exists(lst):
            lst = "/var/lib/dpkg/info/%s.list" % pkg
        with open(lst, encoding="utf-8") as f:
            for line in f:
                owner[line.strip()] = pkg
    chunks = []
    for fn in sorted(os.listdir(root)):
        if os.path.join(root, fn) not in owner:
            continue
        if not fn.endswith(".py") or fn.startswith("_"):
            continue
        if fn in ("this.py",):
            continue
        path = os.path.join(root, fn)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for c in pack_code(text, rng):
            chunks.append((c, owner[path] + ":" + path))
    return chunks


def src_c_code(tar, prefix, rng):
    chunks = []
    names = sorted(m.name for m in tar.getmembers()
                   if m.isfile() and m.name.startswith(prefix + "c/")
                   and m.name.endswith((".c", ".h")))
    for name in names:
        if "dictionary" in name or "static_dict_lut" in name or \
                "static_init" in name:
            continue  # mostly data tables
        text = read_member(tar, name)
        for c in pack_code(text, rng):
            # skip chunks that are mostly numeric tables
            digits = sum(ch.isdigit() for ch in c)
            if digits > 0.25 * len(c):
                continue
            # skip chunks that are mostly preprocessor template plumbing
            lines = [l for l in c.split("\n") if l.strip()]
            if sum(l.lstrip().startswith("#") for l in lines) > 0.4 * len(lines):
                continue
            chunks.append((c, "brotli:" + name))
    return chunks


BASH_GPL2 = ["array-stuff", "fstty", "func", "inetaddr", "isnum2", "ksh*",
             "notify.bash", "seq*", "sort-pos-params", "substr*", "w*"]


def src_shell_code(rng):
    root = "/usr/share/doc/bash/examples"
    chunks = []
    for sub in ("functions", "scripts", "startup-files", "misc"):
        d = os.path.join(root, sub)
        if not os.path.isdir(d):
            continue
        for fn in sorted(os.listdir(d)):
            path = os.path.join(d, fn)
            if not os.path.isfile(path) or fn.endswith((".gz", ".xz", ".c")):
                continue
            with open(path, "rb") as f:
                raw = f.read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                continue
            lic = "GPL-3.0-or-later"
            if sub == "functions" and any(fnmatch.fnmatch(fn, p)
                                          for p in BASH_GPL2):
                lic = "GPL-2.0-or-later"
            for c in pack_code(text, rng):
                chunks.append((c, "bash-doc:" + path, lic))
    return chunks


def src_js_code(rng):
    root = "/usr/share/doc/python3.11/html/_static"
    chunks = []
    for fn in ("doctools.js", "searchtools.js", "sphinx_highlight.js",
               "menu.js", "copybutton.js", "sidebar.js"):
        path = os.path.join(root, fn)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for c in pack_code(text, rng):
            lic = ("BSD-2-Clause" if fn in ("doctools.js", "searchtools.js",
                                            "sphinx_highlight.js")
                   else "PSF-2.0")  # the rest come from CPython's Doc/tools
            chunks.append((c, "python3.11-doc:" + path, lic))
    return chunks


# ----------------------------------------------------------------- main

def select(cands, quota, rng):
    """Deterministically pick chunks until the byte quota is reached."""
    order = list(range(len(cands)))
    rng.shuffle(order)
    picked, total = [], 0
    for i in order:
        if total >= quota:
            break
        picked.append(cands[i])
        total += len(cands[i][0].encode("utf-8"))
    return picked


def clean_text(s):
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = re.sub(r"[ \t]+\n", "\n", s)
    s = re.sub(r"\n{3,}", "\n\n", s)
    return s.strip("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--brotli-sdist",
                    default=os.path.expanduser(
                        "~/.cache/awq-calib/brotli-1.2.1.tar.gz"))
    ap.add_argument("--out", default="data/calib/default.jsonl")
    args = ap.parse_args()

    check_versions()
    with open(args.brotli_sdist, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != BROTLI_SDIST_SHA256:
        warn("brotli sdist sha256 %s != pinned %s" % (digest,
                                                     BROTLI_SDIST_SHA256))

    tar = tarfile.open(args.brotli_sdist, "r:gz")
    prefix = sorted(m.name for m in tar.getmembers())[0].split("/")[0] + "/"

    def R(tag):
        # independent, stable stream per source
        return random.Random("%d:%s" % (SEED, tag))

    lic = {
        "debian-reference": "GPL-2.0-or-later",
        "python-doc": "PSF-2.0",
        "gnu-info": "GFDL-1.3-or-later (no invariant sections)",
        "alice": "LicenseRef-PublicDomain",
        "asyoulik": "LicenseRef-PublicDomain",
        "paradise-lost": "LicenseRef-PublicDomain",
        "python-code": "PSF-2.0",
        "c-code": "MIT",
        "js-code": "BSD-2-Clause",
    }
    kind = {"debian-reference": "prose", "python-doc": "prose",
            "gnu-info": "prose", "alice": "narrative",
            "asyoulik": "narrative", "paradise-lost": "narrative",
            "python-code": "code", "c-code": "code", "shell-code": "code",
            "js-code": "code"}
    builders = [
        ("debian-reference", lambda r: src_debian_reference(r)),
        ("python-doc", lambda r: src_python_doc(r)),
        ("gnu-info", lambda r: src_gnu_info(r)),
        ("alice", lambda r: src_alice(tar, prefix, r)),
        ("asyoulik", lambda r: src_asyoulik(tar, prefix, r)),
        ("paradise-lost", lambda r: src_paradise_lost(tar, prefix, r)),
        ("python-code", lambda r: src_python_code(r)),
        ("c-code", lambda r: src_c_code(tar, prefix, r)),
        ("shell-code", lambda r: src_shell_code(r)),
        ("js-code", lambda r: src_js_code(r)),
    ]
    records = []
    stats = {}
    for tag, fn in builders:
        cands = []
        for c in fn(R(tag)):
            text = clean_text(c[0])
            hi = CODE_HI if kind[tag] == "code" else PROSE_HI
            if not (PROSE_LO <= len(text) <= hi):
                continue
            cands.append((text, c[1], c[2] if len(c) > 2 else lic[tag]))
        picked = select(cands, QUOTAS[tag], R(tag + ":select"))
        nbytes = sum(len(t.encode("utf-8")) for t, _, _ in picked)
        stats[tag] = (len(cands), len(picked), nbytes)
        records.extend(picked)

    random.Random(SEED).shuffle(records)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for text, source, license_ in records:
            f.write(json.dumps({"text": text, "source": source,
                                "license": license_},
                               ensure_ascii=False, sort_keys=False) + "\n")

    total = sum(s[2] for s in stats.values())
    by_kind = {}
    for tag, (_, n, b) in stats.items():
        k = by_kind.setdefault(kind[tag], [0, 0])
        k[0] += n
        k[1] += b
    for tag, (nc, n, b) in stats.items():
        print("%-16s candidates=%5d picked=%4d bytes=%7d" % (tag, nc, n, b),
              file=sys.stderr)
    for k, (n, b) in sorted(by_kind.items()):
        print("%-10s records=%4d bytes=%7d (%.1f%%)" % (k, n, b,
                                                      100.0 * b / total),
              file=sys.stderr)
    print("total records=%d text bytes=%d -> %s" % (len(records), total,
                                                   args.out), file=sys.stderr)


if __name__ == "__main__":
    main()
