"""Shared test tools: the product as a module and as a command, and independent references."""
import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tiktoken

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "data", "fineweb", "prepare.py")

_spec = importlib.util.spec_from_file_location("prepare", SCRIPT)
prepare = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(prepare)

GPT2 = tiktoken.get_encoding("gpt2")
EOT = GPT2.eot_token


def reference_docs(docs, enc=GPT2):
    """One-shot reference: encode_ordinary(doc) + [EOT] for each document, as lists."""
    return [enc.encode_ordinary(d) + [enc.eot_token] for d in docs]


def txt_documents(text):
    """The txt contract, read from the whole text at once: split at marker runs and the
    whitespace around them, drop empty documents."""
    return [d for d in re.split(r"\s*(?:<\|endoftext\|>\s*)+", text) if d]


def flat(docs):
    return [t for d in docs for t in d]


def read_bin(path, dtype=np.uint16):
    """The file as nanoGPT's train.py reads it."""
    if os.path.getsize(path) == 0:
        return []
    return np.memmap(path, dtype=dtype, mode="r").tolist()


def split_docs(tokens, eot=EOT):
    """Token list cut after each end-of-text token."""
    docs, start = [], 0
    for i, t in enumerate(tokens):
        if t == eot:
            docs.append(tokens[start:i + 1])
            start = i + 1
    assert start == len(tokens), "output does not end with an end-of-text token"
    return docs


def write_parquet(path, rows, column="text", **kwargs):
    kwargs.setdefault("row_group_size", 1000)
    pq.write_table(pa.table({column: pa.array(rows, type=kwargs.pop("type", pa.string()))}),
                   path, **kwargs)


def txt_layout(docs):
    """The user's train_fineweb.txt layout."""
    return "".join(d + "\n\n<|endoftext|><|endoftext|><|endoftext|>\n\n" for d in docs)


def run(*args, env=None, timeout=300, **kwargs):
    """Runs the real command; returns the CompletedProcess (text output)."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, **kwargs)


def assert_user_error(result, *words):
    """A plain error: non-zero exit, no traceback, the words in stderr."""
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for w in words:
        assert w in result.stderr, (w, result.stderr)
