"""Shared test tools: the product as a module and as a command, and independent references."""
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tiktoken

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "data", "fineweb", "prepare.py")

# The product's package, importable by name (prep), as the reader processes it spawns import it.
sys.path.insert(0, os.path.dirname(SCRIPT))
from prep.tokenizers import installed  # noqa: E402

GPT2 = tiktoken.get_encoding("gpt2")
EOT = GPT2.eot_token
# --encoder: both where splintr-rs is installed (Python 3.10+: test_encoder.py checks that it is)
ENCODERS = ["tiktoken"] + (["splintr"] if installed("splintr-rs") else [])


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
    """Runs the command; returns a CompletedProcess (text output). Given env or another option of
    subprocess.run, or with PREPARE_TEST_SUBPROCESS=1, as a process of its own (the real entry);
    else in this process (run_here): a second less per run, which is most of the fast tier."""
    if env or kwargs or os.environ.get("PREPARE_TEST_SUBPROCESS") == "1":
        return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True,
                              env=dict(os.environ, **(env or {})), timeout=timeout, **kwargs)
    return run_here(*args)


def run_here(*args):
    """The command's main in this process, as the entry runs it: its output and its reader
    processes' go to files in place of file descriptors 1 and 2 (children inherit them), and the
    stop signals' handlers are put back after. A bug's exception is raised, as the entry would
    print its traceback."""
    from prep.cli import main
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    argv0, sys.argv[0] = sys.argv[0], SCRIPT  # (argparse names the program by it)
    streams, saved = (sys.stdout, sys.stderr), [os.dup(1), os.dup(2)]
    files = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
    for stream in streams:
        stream.flush()
    try:
        for fd, f in zip((1, 2), files):
            os.dup2(f.fileno(), fd)
        sys.stdout, sys.stderr = (open(fd, "w", encoding="utf-8", closefd=False, buffering=1) for fd in (1, 2))
        try:
            code = main(list(map(str, args)))
        except SystemExit as e:
            code = e.code
    finally:
        for fd, stream in zip((1, 2), (sys.stdout, sys.stderr)):
            stream.flush()
            os.dup2(saved[fd - 1], fd)
            os.close(saved[fd - 1])
        sys.stdout, sys.stderr, sys.argv[0] = *streams, argv0
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    out, err = ((f.seek(0), f.read().decode("utf-8", "replace"), f.close())[1] for f in files)
    return subprocess.CompletedProcess(args, code, out, err)


def assert_user_error(result, *words):
    """A plain error: non-zero exit, no traceback, the words in stderr."""
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for w in words:
        assert w in result.stderr, (w, result.stderr)


def summary_of(out):
    """The run's summary.json."""
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


def documents_in(out):
    """The documents of train and val, as the summary counts them."""
    s = summary_of(out)
    return s["train"]["documents"] + s["val"]["documents"]


def nothing_written(out):
    """No output in out: the folder is missing or holds only the tool's hidden files."""
    return not os.path.exists(out) or not [n for n in os.listdir(out) if not n.startswith(".prepare")]


def sha_and_size(path):
    with open(path, "rb") as f:
        data = f.read()
    return len(data), hashlib.sha256(data).hexdigest()


def jsonl_line(text):
    return json.dumps({"text": text})


DOCS_300 = [f"Small document {i}, with a few words in it." for i in range(300)]
DOCS_400 = [f"Document {i}: a few words about the number {i * 13}, and then some more." for i in range(400)]


# --- real runs, stopped and resumed ------------------------------------------------------------

FAST_CHECKPOINTS = ["--chunk-size", "20000", "--checkpoint-seconds", "0"]


def digest(out):
    files = {}
    for name in ("train.bin", "val.bin"):
        with open(os.path.join(out, name), "rb") as f:
            files[name] = hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    files["counts"] = [summary[s][k] for s in ("train", "val") for k in ("tokens", "documents")]
    return files


def start(*args, env=None):
    """Starts the real command; returns the Popen (text output)."""
    return subprocess.Popen([sys.executable, SCRIPT, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, **(env or {})))


def checkpoint(out):
    try:
        with open(os.path.join(out, "prepare.checkpoint.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def wait_for_progress(out, proc, timeout=60, pause=False):
    """Waits until the run has checkpointed some progress; pause: then SIGSTOP it, so that
    it cannot finish before the test's next step (SIGCONT lets it go on)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        cp = checkpoint(out)
        if cp and (cp["split"]["tokens"][0] > 0 or cp["next_unit"] > 0):
            if pause:
                proc.send_signal(signal.SIGSTOP)
            return cp
        time.sleep(0.02)
    raise AssertionError("the run made no checkpointed progress")


def interrupt(proc, sig):
    """Sends sig to a paused run and lets it go on to handle it."""
    proc.send_signal(sig)
    proc.send_signal(signal.SIGCONT)


def killed_at_random(args, ready, rng, times, pause=0.3):
    """Runs the command again and again, SIGKILLing it at a random moment (up to pause seconds)
    once ready() says it has made progress; yields after each kill, at most times times, and
    stops early when a run finishes first."""
    for _ in range(times):
        proc = start(*args)
        deadline = time.time() + 60
        while proc.poll() is None and not ready() and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, pause))
        if proc.poll() is not None:
            proc.communicate()
            return
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        yield
