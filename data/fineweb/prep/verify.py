"""--verify: the finished output checked against its summary."""
from __future__ import annotations

import hashlib
import os
import sys
import zlib
from dataclasses import replace

import numpy as np

from .config import Config, SPLITS, SUMMARY, UserError, plural
from .tokenizers import builtin_tokenizer, load_tokenizer
from .formats import FORMATS, crc32_hex, read_json


def verify(config: Config) -> int:
    out_dir = config.out_dir
    summary_path = os.path.join(out_dir, SUMMARY)
    if not os.path.exists(summary_path):
        raise UserError(f"{out_dir} holds no finished output ({SUMMARY} is missing)")
    summary = read_json(summary_path)
    tok = summary_tokenizer(summary, config)
    dtype = np.dtype(summary["dtype"])
    if not all("crc32" in f for f in summary["files"]):
        print(f"note: {summary_path} records no checksums (it was written by an earlier version of this script): "
              "the files' headers, sizes, token ranges and document counts are checked, not each token",
              file=sys.stderr)
    bad = []  # (every file is checked, each bad one named)
    for s in SPLITS:
        files = [f for f in summary["files"] if f["split"] == s]
        docs, bad_before = 0, len(bad)
        for i, f in enumerate(files):
            try:
                docs += verify_file(os.path.join(out_dir, f["file"]), f, summary, tok, dtype, shows=i == 0)
            except UserError as e:
                print(f"error: {e}", file=sys.stderr)
                bad.append(f["file"])
        if len(bad) == bad_before and (docs != eots_of(summary, s) or
                                       sum(f["tokens"] for f in files) != summary[s]["tokens"]):
            print(f"error: the {s} files hold {docs:,} documents, but the summary says {summary[s]['documents']:,}",
                  file=sys.stderr)
            bad.append(f"the {s} counts")
    if bad:
        raise UserError(f"{plural(len(bad), 'problem')} in {out_dir} (each named above): {', '.join(bad[:5])}"
                        f"{' ...' if len(bad) > 5 else ''}; the run's command with --restart makes the output again")
    return 0


def eots_of(summary: dict, split: str) -> int:
    """How many end-of-text ids the split's files hold: one per document, and any of documents'
    own text (see document_ends; a summary of before that has none)."""
    return summary[split]["documents"] + summary.get("doc_token_in_text", {}).get(split, 0)


def summary_tokenizer(summary: dict, config: Config):
    """The tokenizer the output was made with, as its summary names it (its file unchanged)."""
    about = summary.get("tokenizer") or dict(encoding=summary["encoding"])  # (or a summary of before --tokenizer)
    if "file" not in about:  # a tiktoken encoding
        return builtin_tokenizer(about["encoding"], summary.get("doc_token"))
    try:
        with open(about["file"], "rb") as f:
            same = hashlib.sha256(f.read()).hexdigest() == about["sha256"]
    except OSError as e:
        raise UserError(f"cannot read the tokenizer the output was made with, {about['file']} ({e.strerror})") from None
    if not same:
        raise UserError(f"{about['file']} has changed since the output was made with it; --verify needs that file")
    return load_tokenizer(replace(config, tokenizer=about["file"], tokenizer_pattern=about.get("pattern"),
                                  doc_token=summary["doc_token"]))


def verify_file(path, want, summary, tok, dtype, shows):
    """Checks one file (its header, size, tokens, end-of-text count, CRC-32 where the summary
    records it); shows a document."""
    if not os.path.exists(path):
        raise UserError(f"{path} is missing")
    fmt, n = FORMATS[summary["format"]], want["tokens"]
    header = fmt.header(n, dtype)
    with open(path, "rb") as f:
        head = f.read(len(header))
    crc = zlib.crc32(head)
    if head != header:
        raise UserError(f"{path}: its header is not the {summary['format']} header for {n:,} {dtype.name} tokens")
    size = os.path.getsize(path)
    if size != len(header) + n * dtype.itemsize:
        raise UserError(f"{path} is {size:,} bytes, but the summary says {n:,} "
                        f"{dtype.name} tokens ({len(header) + n * dtype.itemsize:,} bytes)")
    eots, start = 0, np.empty(0, dtype)  # (read in blocks: a memory map's pages would count as ours)
    with open(path, "rb") as f:
        f.seek(len(header))
        for lo in range(0, n, 1 << 24):
            block = np.fromfile(f, dtype, count=min(1 << 24, n - lo))
            start = start if lo else block[:1 << 20].copy()
            if block.max() >= tok.n_vocab:
                bad = int(np.argmax(block >= tok.n_vocab))
                raise UserError(f"{path}: token {lo + bad:,} is {int(block[bad])}, not below the "
                                f"vocabulary size {tok.n_vocab}")
            eots += int(np.count_nonzero(block == tok.doc_token))
            crc = zlib.crc32(block, crc)
    documents = want.get("documents", eots_of(summary, want["split"]))
    if eots != documents:
        raise UserError(f"{path} holds {eots:,} end-of-text tokens, but the summary says "
                        f"{documents:,} documents")
    if want.get("crc32", crc32_hex(crc)) != crc32_hex(crc):
        raise UserError(f"{path}: its CRC-32 is {crc32_hex(crc)}, but the summary says {want['crc32']}: "
                        "some of its tokens changed after it was written")
    print(f"ok: {path}: {n:,} {dtype.name} tokens, {eots:,} documents" +
          (f", CRC-32 {want['crc32']}" if "crc32" in want else ""))
    if shows:
        ends = np.flatnonzero(start == tok.doc_token)[:3]
        docs = zip(ends[:-1] + 1, ends[1:]) if fmt.eot_before else zip([-1, *ends[:-1]], ends)
        for lo, hi in list(docs)[:2]:
            text = tok.decode(start[lo + (not fmt.eot_before):hi].tolist())
            print(f"  {want['split']} document: {text[:200]!r}{'...' if len(text) > 200 else ''}")
    return eots
