"""Edge cases found in review, each against an independent reference: a merge rerun after its
last checkpoint, damaged compressed and JSON Lines input with --skip-bad-files, signals while
starting, memory on huge parquet rows and row groups, long whitespace runs, one long JSON line,
bad and too deeply nested JSON lines."""
import bz2
import contextlib
import functools
import glob
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

import corpus
import memory
from helpers import (SCRIPT, assert_user_error, digest, flat, read_bin,
                     reference_docs, run, split_docs, txt_documents, txt_layout, write_parquet)
from prep.cli import main, make_config
from prep.config import CHUNK_CHARS, MAX_SEARCH
from prep.inputs import kind_of, open_inputs, plan_units
from prep.readers import read_unit
from prep.streams import Input, STREAM_ERRORS, open_stream

MEMORY_MIB = 256  # the README's bound for the defaults, whatever the input


def summary_of(out):
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def message_lines(stderr):
    """stderr without the progress bar: the lines a person reads."""
    lines = (line.split("\r")[-1].strip() for line in stderr.split("\n"))
    return [line for line in lines if line and not line.startswith("tokenizing")]


def assert_one_sentence(result, *words):
    assert_user_error(result, *words)
    assert len(error_lines(result.stderr)) == 1, result.stderr


def tokens_of(pool_refs, order):
    """The flat reference tokens of documents pool[i] for i in order (uint16)."""
    arrays = [np.asarray(r, dtype=np.uint16) for r in pool_refs]
    return np.concatenate([arrays[i] for i in order]) if len(order) else np.empty(0, np.uint16)


def bin_tokens(path):
    return np.fromfile(path, dtype=np.uint16)


def jsonl_line(text):
    return json.dumps({"text": text})


# --- 1. a merge rerun after the checkpoint that says it is done ----------------------------------

@pytest.fixture(scope="module")
def four_txt(tmp_path_factory):
    """Four ~80 KB txt files (four units), their documents, and the total reference tokens."""
    d = tmp_path_factory.mktemp("four")
    paths, docs = [], []
    for k in range(4):
        path = d / f"in{k}.txt"
        corpus.write_txt(path, 80_000, seed=100 + k)
        paths.append(path)
        docs += txt_documents(path.read_text(encoding="utf-8"))
    return paths, reference_docs(docs)


def parts_then_failed_merge(inputs, out, args, parts_from=None):
    """The parts of two --shard runs (or a copy of them) in out, then a --merge whose summary
    cannot be written (a folder named summary.json.tmp), then the folder removed."""
    if parts_from:
        shutil.copytree(os.path.join(parts_from, "parts"), os.path.join(out, "parts"))
    else:
        for shard in ("0/2", "1/2"):
            r = run("--input", *inputs, "--out-dir", out, "--shard", shard)
            assert r.returncode == 0, r.stderr
    os.mkdir(os.path.join(out, "summary.json.tmp"))
    r = run("--input", *inputs, "--out-dir", out, "--merge", *args)
    assert r.returncode != 0 and "Traceback" not in r.stderr, \
        "a folder named summary.json.tmp no longer makes the summary write fail: update this test\n" + r.stderr
    os.rmdir(os.path.join(out, "summary.json.tmp"))
    return run("--input", *inputs, "--out-dir", out, "--merge", *args)


def sha_and_size(path):
    with open(path, "rb") as f:
        data = f.read()
    return len(data), hashlib.sha256(data).hexdigest()


def shard_files(out):
    """name -> (bytes, sha256) of each llm.c shard."""
    return {os.path.basename(p): sha_and_size(p) for p in sorted(glob.glob(os.path.join(out, "fineweb_*.bin")))}


@pytest.mark.slow
def test_merge_with_max_tokens_rerun_after_its_final_checkpoint_adds_nothing(four_txt, tmp_path):
    inputs, ref = four_txt
    budget = len(flat(ref)) // 2
    # nanoGPT's train.bin / val.bin
    args = ["--max-tokens", budget, "--val-fraction", 0.02]
    r = run("--input", *inputs, "--out-dir", tmp_path / "one", *args)
    assert r.returncode == 0, r.stderr
    kept = sorted(split_docs(read_bin(tmp_path / "one" / "train.bin")) +
                  split_docs(read_bin(tmp_path / "one" / "val.bin")))  # (the first documents)
    assert kept == sorted(ref[:len(kept)]) and len(flat(kept)) >= budget > len(flat(ref[:len(kept) - 1]))
    merged = tmp_path / "merged"
    r = parts_then_failed_merge(inputs, merged, args)
    assert r.returncode == 0, r.stderr
    assert digest(merged) == digest(tmp_path / "one")
    r = run("--input", *inputs, "--out-dir", merged, "--merge", *args)  # once more: already done
    assert r.returncode == 0, r.stderr
    assert digest(merged) == digest(tmp_path / "one")
    # llm.c shards, from the same parts
    args = ["--format", "llmc", "--max-tokens", budget, "--val-tokens", 2000, "--shard-tokens", 6000]
    r = run("--input", *inputs, "--out-dir", tmp_path / "one_llmc", *args)
    assert r.returncode == 0, r.stderr
    r = parts_then_failed_merge(inputs, tmp_path / "merged_llmc", args, parts_from=merged)
    assert r.returncode == 0, r.stderr
    want, got = shard_files(tmp_path / "one_llmc"), shard_files(tmp_path / "merged_llmc")
    assert len(want) >= 3 and list(got) == list(want)
    assert got == want
    one, two = summary_of(tmp_path / "one_llmc"), summary_of(tmp_path / "merged_llmc")
    assert [one[s] for s in ("train", "val")] == [two[s] for s in ("train", "val")]


# --- 2. a truncated compressed txt: what is kept must not depend on --chunk-size ---------------

CODECS = ["gz", "bz2", "xz", "zst", "lz4"]
GOOD_DOCS = [f"A good document number {i}, before the damaged file." for i in range(5)]


@functools.lru_cache(maxsize=None)
def compressed_txt(codec):
    """The whole compressed bytes of a txt in the user's layout (ASCII text: a cut inside
    a character cannot happen). bzip2 compresses 900 kB blocks: 3 MB gives complete blocks."""
    docs = list(corpus.documents(3_000_000 if codec == "bz2" else 600_000, seed=7))
    data = txt_layout(docs).encode("ascii")
    if codec == "gz":
        return gzip.compress(data)
    if codec == "bz2":
        return bz2.compress(data)
    if codec == "xz":
        return lzma.compress(data)
    sink = pa.BufferOutputStream()  # zstd, and lz4's frame format (what the lz4 tool writes)
    with pa.CompressedOutputStream(sink, "zstd" if codec == "zst" else "lz4") as f:
        f.write(data)
    return sink.getvalue().to_pybytes()


def readable_prefix(codec, data):
    """The text the standard library's incremental decompressor gets out of damaged bytes."""
    d = {"gz": lambda: zlib.decompressobj(wbits=31), "bz2": bz2.BZ2Decompressor,
         "xz": lzma.LZMADecompressor}[codec]()
    return d.decompress(data).decode("utf-8", errors="replace")


def run_here(*args):
    """prepare.main in this process (cheap for small inputs); (exit code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in args])
    return code, err.getvalue()


@pytest.mark.parametrize("codec", CODECS)
@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.reuse, Phase.generate])  # (no shrinking: each example is 3 runs)
@given(fraction=st.floats(0.3, 0.9))
def test_truncated_compressed_txt_keeps_the_same_whatever_the_chunk_size(codec, fraction):
    whole = compressed_txt(codec)
    cut = whole[:int(len(whole) * fraction)]
    with tempfile.TemporaryDirectory() as d:
        good = os.path.join(d, "good.txt")  # (so that the output is never empty)
        with open(good, "w", encoding="utf-8") as f:
            f.write(txt_layout(GOOD_DOCS))
        path = os.path.join(d, f"cut.txt.{codec}")
        with open(path, "wb") as f:
            f.write(cut)
        outputs = {}
        for chunk in (4099, 100_000, None):
            out = os.path.join(d, f"o{chunk}")
            code, err = run_here("--input", good, path, "--out-dir", out, "--val-fraction", 0, "--skip-bad-files",
                                 *(["--chunk-size", chunk] if chunk else []))
            assert code == 0, err
            assert "cut.txt." + codec in err, err
            outputs[chunk] = [sha_and_size(os.path.join(out, n)) for n in ("train.bin", "val.bin")]
        assert outputs[4099] == outputs[100_000] == outputs[None], f"--chunk-size changed what was kept: {outputs}"
        if codec in ("gz", "bz2", "xz"):
            expected = GOOD_DOCS + txt_documents(readable_prefix(codec, cut))
            assert read_bin(os.path.join(d, "oNone", "train.bin")) == flat(reference_docs(expected))


# --- 3. damaged JSON Lines at the start of a file ------------------------------------------------

def test_skip_bad_files_takes_damaged_jsonl_at_their_start(tmp_path):
    docs = list(corpus.documents(120_000, seed=8))
    data = "".join(jsonl_line(t) + "\n" for t in docs).encode()
    whole = gzip.compress(data)
    n = 6000  # compressed bytes kept: well inside the first 64 KiB of text
    while True:  # (the cut-off last line must not happen to be whole JSON)
        prefix = zlib.decompressobj(wbits=31).decompress(whole[:n])
        tail = prefix.rsplit(b"\n", 1)[-1]
        try:
            json.loads(tail)
        except ValueError:
            if tail:
                break
        n -= 1
    assert len(prefix) < 1 << 16
    kept = [json.loads(line)["text"] for line in prefix.split(b"\n")[:-1]]
    assert kept
    (tmp_path / "cut.jsonl.gz").write_bytes(whole[:n])
    (tmp_path / "empty.jsonl.xz").write_bytes(b"")
    (tmp_path / "empty.jsonl.bz2").write_bytes(b"")
    good = [f"Good line {i} of a good file." for i in range(40)]
    (tmp_path / "good.jsonl").write_text("".join(jsonl_line(t) + "\n" for t in good))
    bad = ["cut.jsonl.gz", "empty.jsonl.xz", "empty.jsonl.bz2"]
    r = run("--input", *[tmp_path / b for b in bad], tmp_path / "good.jsonl", "--out-dir", tmp_path / "o",
            "--skip-bad-files", "--val-fraction", 0)
    assert r.returncode == 0, r.stderr
    for name in bad:
        assert name in r.stderr, (name, r.stderr)
    assert read_bin(tmp_path / "o" / "train.bin") == flat(reference_docs(kept + good))
    for name in bad:  # without --skip-bad-files: one sentence naming the file
        r = run("--input", tmp_path / name, tmp_path / "good.jsonl", "--out-dir", tmp_path / f"s_{name}")
        assert_one_sentence(r, name)


# --- 4. a signal in the first seconds ------------------------------------------------------------

@pytest.fixture(scope="module")
def txt20(tmp_path_factory):
    """A 20 MB txt (reader processes are spawned) and the digest of an uninterrupted run."""
    d = tmp_path_factory.mktemp("txt20")
    corpus.write_txt(d / "in.txt", 20 << 20, seed=61)
    r = run("--input", d / "in.txt", "--out-dir", d / "whole", "--val-fraction", 0.01)
    assert r.returncode == 0, r.stderr
    return d / "in.txt", digest(d / "whole")


def interpreter_startup():
    """Seconds Python takes here before it runs a script's first line (the slowest of 3). A signal
    before then meets Python's own startup, which no script can handle: SIGINT stops it with
    "Fatal Python error: init_import_site", SIGTERM kills it silently."""
    times = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - t)
    return max(times)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_in_the_first_seconds_stops_cleanly_and_resumes(txt20, sig, tmp_path):
    """The moments count from when the script starts running (imports, the reader's spawn, the
    first chunks); then the same command finishes with the bytes of an uninterrupted run."""
    path, whole = txt20
    startup = interpreter_startup() + 0.02
    for delay in (0.05, 0.3, 0.8, 1.5, 2.5):
        out = tmp_path / f"out{delay}"
        args = [sys.executable, SCRIPT, "--input", str(path), "--out-dir", str(out), "--val-fraction", "0.01"]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        time.sleep(startup + delay)
        try:
            os.killpg(proc.pid, sig)  # (as Ctrl-C reaches the whole process group)
        except ProcessLookupError:
            pass
        _, err = proc.communicate(timeout=60)
        assert "Traceback" not in err, (delay, err)
        assert proc.returncode in (128 + sig, 0), (delay, proc.returncode, err)
        if proc.returncode:
            said = message_lines(err)
            assert len(said) == 1, (delay, err)
        r = run(*args[2:])
        assert r.returncode == 0, (delay, r.stderr)
        assert digest(out) == whole, delay


# --- 5. parquet: memory must not depend on row size or row-group size ----------------------------

def peak_run(*args):
    peak, code, err = memory.peak_rss_mib([*map(str, args)])
    assert code == 0, err
    assert "Traceback" not in err
    return peak


@pytest.mark.slow
def test_parquet_memory_with_huge_rows_and_one_huge_row_group(tmp_path):
    pool = list(corpus.documents(400_000, seed=9))
    paragraph = " ".join(pool)[:10_000]
    # (a) 150 rows of ~500 KB, in row groups of 50 rows (~25 MB each). A data page is decoded
    # whole, and pyarrow sizes pages 1,024 rows at a time by default (here: 25 MB pages); memory
    # is bounded for pages of normal size (README: a page is the unit parquet can be read by)
    rows = [" ".join(f"{paragraph} ({i}.{j})" for j in range(50)) for i in range(150)]
    write_parquet(tmp_path / "big_rows.parquet", rows, row_group_size=50, write_batch_size=2)
    # (b) ~150 MB of ordinary rows in one row group
    rows = [f"{pool[i % len(pool)]} ({i})" for i in range(80_000)]
    assert sum(map(len, rows)) > 140e6
    write_parquet(tmp_path / "one_group.parquet", rows, row_group_size=len(rows))
    del rows
    peaks = {}
    for name, n_rows in (("big_rows", 150), ("one_group", 80_000)):
        out = tmp_path / f"o_{name}"
        peaks[name] = peak_run("--input", tmp_path / f"{name}.parquet", "--out-dir", out, "--val-fraction", 0)
        assert summary_of(out)["train"]["documents"] == n_rows
    assert max(peaks.values()) < MEMORY_MIB, peaks


# --- 6. long whitespace runs ---------------------------------------------------------------------

@pytest.mark.slow
def test_a_long_whitespace_run_inside_a_txt_document(tmp_path):
    with open(tmp_path / "ws.txt", "w", encoding="utf-8") as f:
        f.write("hello world" + " " * (16 << 20) + " end" + "\n<|endoftext|>\n" + "second document")
    out = tmp_path / "o"
    peak, code, err = memory.peak_rss_mib(["--input", tmp_path / "ws.txt", "--out-dir", out, "--val-fraction", 0])
    assert code == 0 and "Traceback" not in err, err
    # the run is held until what follows shows whether it ends the document: the README's bound
    # is the defaults' plus one document's text (16 MiB here)
    assert peak < MEMORY_MIB + 16, peak
    assert summary_of(out)["forced_cuts"] > 0
    assert "forced cut" in err, err
    second = flat(reference_docs(["second document"]))
    assert read_bin(out / "train.bin")[-len(second):] == second


@pytest.mark.slow
def test_long_whitespace_runs_in_json_lines_give_no_traceback(tmp_path):
    """48 MB of whitespace in one value, and 1.5 M spaces before a word (tiktoken's regex
    overflows its backtracking stack on such a run followed by a non-space)."""
    lines = [{"text": "\n" + " " * (48 << 20) + "\n"}, {"text": "x" + " " * (3 << 19) + "end"},
             {"text": "last document"}]
    (tmp_path / "ws.jsonl").write_text("".join(json.dumps(row) + "\n" for row in lines))
    r = run("--input", tmp_path / "ws.jsonl", "--out-dir", tmp_path / "o", "--val-fraction", 0)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert summary_of(tmp_path / "o")["train"]["documents"] == 3
    last = flat(reference_docs(["last document"]))
    assert read_bin(tmp_path / "o" / "train.bin")[-len(last):] == last


# --- 7. one long JSON line -----------------------------------------------------------------------

@pytest.mark.slow
def test_one_long_json_line_costs_no_more_with_a_small_chunk_size(tmp_path):
    """A 16 MiB line of long one-token words (cheap to encode, so reading dominates). Reading
    a line in chunks must stay linear in its length. (Copying the line read so far at each chunk
    costs length^2 / chunk size: here that was ~7x the default's time at --chunk-size 16384, but
    only ~2x at 65536, too close to call on a fast machine; a linear reader takes ~1x at both.)"""
    rng = np.random.default_rng(3)
    words = np.array([w for w in corpus.WORDS if len(w) >= 9])
    text = " ".join(words[rng.integers(0, len(words), 1_600_000)])[:16 << 20].strip()
    (tmp_path / "long.jsonl").write_text(jsonl_line(text) + "\n" + jsonl_line("a short one") + "\n")
    times = {}
    for chunk in (16384, None):
        out = tmp_path / f"o{chunk}"
        t = time.perf_counter()
        r = run("--input", tmp_path / "long.jsonl", "--out-dir", out, "--val-fraction", 0,
                *(["--chunk-size", chunk] if chunk else []))
        times[chunk] = time.perf_counter() - t
        assert r.returncode == 0, r.stderr
        assert read_bin(out / "train.bin") == flat(reference_docs([text, "a short one"]))
    assert times[16384] < 3 * times[None], times


# --- 8. bad JSON lines with --skip-bad-files cost only themselves --------------------------------

def count_said(stderr, n):
    """Whether stderr says n bad lines in a few words ("1 bad line", "3 lines not JSON")."""
    return re.search(rf"(?<![\d,.]){n}\s+(?:[A-Za-z-]+\s+){{0,3}}lines?\b", stderr, re.I)


@pytest.mark.slow
def test_one_bad_json_line_costs_only_itself_in_a_two_unit_file(tmp_path):
    pool = list(corpus.documents(600_000, seed=10))
    pool_refs = reference_docs(pool)
    path = tmp_path / "big.jsonl"
    bad_line, order, size = 7, [], 0  # (line numbers count from 1)
    with open(path, "w", encoding="utf-8") as f:
        for number in range(1, 1 << 30):
            if number == bad_line:
                line = '{"text": "cut off here\n'
            else:
                order.append(len(order) % len(pool))
                line = jsonl_line(pool[order[-1]]) + "\n"
            f.write(line)
            size += len(line)
            if size >= 40_000_000:
                break
    assert os.path.getsize(path) > 32 << 20  # two units
    r = run("--input", path, "--out-dir", tmp_path / "o", "--skip-bad-files", "--val-fraction", 0)
    assert r.returncode == 0, r.stderr
    assert summary_of(tmp_path / "o")["train"]["documents"] == len(order)
    assert np.array_equal(bin_tokens(tmp_path / "o" / "train.bin"), tokens_of(pool_refs, order))
    assert "big.jsonl" in r.stderr and re.search(rf"line {bad_line}\b", r.stderr), r.stderr
    assert count_said(r.stderr, 1), r.stderr


def test_several_bad_json_lines_each_cost_only_themselves(tmp_path):
    good = [f"Document {i}: a few words of text." for i in range(300)]
    bad = {5: '{"text": "cut', 100: "nonsense", 250: '{"text": "a", '}  # line number -> line
    lines, it = [], iter(good)
    for number in range(1, len(good) + len(bad) + 1):
        lines.append(bad[number] if number in bad else jsonl_line(next(it)))
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    r = run("--input", tmp_path / "bad.jsonl", "--out-dir", tmp_path / "o", "--skip-bad-files", "--val-fraction", 0)
    assert r.returncode == 0, r.stderr
    assert read_bin(tmp_path / "o" / "train.bin") == flat(reference_docs(good))
    assert "bad.jsonl" in r.stderr and re.search(r"line 5\b", r.stderr), r.stderr
    assert count_said(r.stderr, 3), r.stderr
    r = run("--input", tmp_path / "bad.jsonl", "--out-dir", tmp_path / "s")
    assert_one_sentence(r, "bad.jsonl")
    assert re.search(r"line 5\b", r.stderr), r.stderr


# --- 9. a JSON line nested too deeply to parse ---------------------------------------------------

def test_a_json_line_nested_100000_deep_is_a_bad_line(tmp_path):
    good = [f"Line {i} of ordinary text." for i in range(50)]
    deep = {11: "[" * 100_000 + "]" * 100_000, 32: '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}"}
    lines, it = [], iter(good)
    for number in range(1, len(good) + len(deep) + 1):
        lines.append(deep[number] if number in deep else jsonl_line(next(it)))
    (tmp_path / "deep.jsonl").write_text("\n".join(lines) + "\n")
    r = run("--input", tmp_path / "deep.jsonl", "--out-dir", tmp_path / "o", "--skip-bad-files", "--val-fraction", 0)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "deep.jsonl" in r.stderr and "warning" in r.stderr, r.stderr
    assert read_bin(tmp_path / "o" / "train.bin") == flat(reference_docs(good))
    r = run("--input", tmp_path / "deep.jsonl", "--out-dir", tmp_path / "s")
    assert_one_sentence(r, "deep.jsonl")
    assert re.search(r"line 11\b", r.stderr), r.stderr


# --- found by an independent review of the fixes above ---------------------------------------------

def decompressed(path):
    """Every byte prepare's stream gives out of a compressed file, read 1,000 bytes at a time,
    and the error that ended it (None at a clean end)."""
    kind, comp = kind_of(str(path))
    stream, raw = open_stream(Input(str(path), kind, comp, 0, 0))
    parts = []
    with raw:
        try:
            while block := stream.read(1000):
                parts.append(block)
        except STREAM_ERRORS as e:
            return b"".join(parts), e
    return b"".join(parts), None


def test_compressed_files_are_read_as_pythons_own_readers_read_them(tmp_path):
    """Padding and trailing bytes after the last member, as gzip.open, bz2.open and lzma.open
    take them; a gzip file cut short gives out all zlib can (the last match included)."""
    text = txt_layout(DOCS_SMALL).encode()
    cases = {"pad.txt.gz": (gzip.compress(text) + b"\0" * 100, gzip.open),
             "two.txt.gz": (gzip.compress(text) + gzip.compress(text), gzip.open),
             "junk.txt.bz2": (bz2.compress(text) + b"junk", bz2.open),
             "pad.txt.xz": (lzma.compress(text) + b"\0" * 4, lzma.open),
             "junk.txt.xz": (lzma.compress(text) + b"junk", lzma.open)}
    for name, (data, opener) in cases.items():
        (tmp_path / name).write_bytes(data)
        try:
            with opener(tmp_path / name) as f:
                want = f.read()
        except (OSError, EOFError, lzma.LZMAError):
            continue  # (the stdlib refuses it: no promise)
        assert decompressed(tmp_path / name) == (want, None), name
    for cut in (89, 153, 216):
        (tmp_path / "cut.txt.gz").write_bytes(gzip.compress(b"x" * 200_000)[:cut])
        got, error = decompressed(tmp_path / "cut.txt.gz")
        assert got == zlib.decompressobj(wbits=31).decompress(gzip.compress(b"x" * 200_000)[:cut])
        assert error is not None


DOCS_SMALL = [f"Small document {i}, with a few words in it." for i in range(300)]


def test_an_empty_compressed_file_is_damaged_whatever_the_codec(tmp_path):
    for name in ("e.txt.gz", "e.txt.bz2", "e.txt.xz", "e.txt.zst", "e.txt.lz4"):
        (tmp_path / name).write_bytes(b"")
        assert_one_sentence(run("--input", tmp_path / name, "--out-dir", tmp_path / "o"), name, "empty")


def test_a_dangling_link_of_another_kind_is_one_sentence_with_skip_bad_files(tmp_path):
    (tmp_path / "a.txt").write_text(txt_layout(DOCS_SMALL))
    os.symlink(tmp_path / "nowhere", tmp_path / "broken.md")
    r = run("--input", tmp_path / "a.txt", tmp_path / "broken.md", "--out-dir", tmp_path / "o", "--skip-bad-files")
    assert_one_sentence(r, "broken.md")


def test_two_names_of_one_blob_are_two_files(tmp_path):
    """The Hugging Face cache links files of the same content to one blob."""
    blobs, snap = tmp_path / "blobs", tmp_path / "snapshot"
    blobs.mkdir()
    snap.mkdir()
    (blobs / "sha").write_text(txt_layout(DOCS_SMALL))
    os.symlink(blobs / "sha", snap / "000.txt")
    os.symlink(blobs / "sha", snap / "001.txt")
    r = run("--input", snap, "--out-dir", tmp_path / "o", "--val-fraction", 0)
    assert r.returncode == 0, r.stderr
    assert summary_of(tmp_path / "o")["train"]["documents"] == 2 * len(DOCS_SMALL)


def test_json_configs_in_a_folder_are_left_out_whatever_their_shape(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "data.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in DOCS_SMALL))
    (d / "files.json").write_text(json.dumps(["a.jsonl", "b.jsonl"], indent=1))  # a pretty array
    (d / "meta.json").write_text(json.dumps({"sizes": list(range(20_000))}))  # one line over 64 KiB
    r = run("--input", d, "--out-dir", tmp_path / "o", "--val-fraction", 0)
    assert r.returncode == 0, r.stderr
    assert "files.json" in r.stderr and "meta.json" in r.stderr
    assert summary_of(tmp_path / "o")["train"]["documents"] == len(DOCS_SMALL)


def test_the_val_bound_trusts_only_plain_parquet_sizes(tmp_path):
    """Prefix-encoded text is stored in less than its size: no refusal before the work."""
    rows = ["the same long prefix " * 500 + f"and then row {i}" for i in range(200)]
    pa_parquet = pytest.importorskip("pyarrow.parquet")
    pa_parquet.write_table(pa.table({"text": rows}), tmp_path / "p.parquet", use_dictionary=False,
                           column_encoding={"text": "DELTA_BYTE_ARRAY"})
    r = run("--input", tmp_path / "p.parquet", "--out-dir", tmp_path / "o", "--format", "llmc",
            "--val-tokens", 100_000, "--shard-tokens", 1_000_000)
    assert r.returncode == 0 and "at most" not in r.stderr, r.stderr


def test_dictionary_encoded_parquet_rows_come_in_small_batches(tmp_path):
    """4,000 copies of one 5,000-character row: the footer says 5 KB, the text is 19 MiB; no chunk
    of the reader holds more than about a chunk's worth."""
    write_parquet(tmp_path / "d.parquet", ["w" * 4999 + " "] * 4000, row_group_size=4000)
    config = make_config(["--input", str(tmp_path / "d.parquet"), "--out-dir", str(tmp_path / "o")])
    inputs = open_inputs(config)
    sizes = [sum(len(seg.text) for seg in chunk.segments)
             for chunk in read_unit(inputs, plan_units(inputs, config)[0], None, config)]
    assert sum(sizes) == 4000 * 5000 and max(sizes) <= 2 * CHUNK_CHARS, max(sizes)


# --- a long document comes in several chunks: only the last has a place to resume at ----------------

@pytest.mark.slow
def test_long_documents_come_in_bounded_chunks_and_resume_anywhere(tmp_path):
    pool = list(corpus.documents(2_000_000, seed=3))
    long_docs = [" ".join(pool[i::7]) for i in range(7)]  # ~290K characters each
    assert min(map(len, long_docs)) > 200_000
    rows = [long_docs[0], "short one", long_docs[1], long_docs[2], "another short one", *long_docs[3:]]
    (tmp_path / "long.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in rows))
    config = make_config(["--input", str(tmp_path / "long.jsonl"), "--out-dir", str(tmp_path / "o"),
                                  "--chunk-size", "20000"], piece_chars=100_000)
    inputs = open_inputs(config)
    chunks = list(read_unit(inputs, plan_units(inputs, config)[0], None, config))
    sizes = [sum(len(seg.text) for seg in c.segments) for c in chunks]
    assert max(sizes) < 2 * 20_000 + 100_000 + MAX_SEARCH and len(chunks) > 10, sizes
    assert any(c.place is None and not c.finished for c in chunks)  # (chunks inside a document: no position)
    args = ["--input", tmp_path / "long.jsonl", "--val-fraction", 0.3, "--chunk-size", 20000,
            "--checkpoint-seconds", 0, "--workers", 1]
    whole = tmp_path / "whole"
    assert run(*args, "--out-dir", whole).returncode == 0
    assert read_bin(whole / "train.bin") + read_bin(whole / "val.bin") != []
    for n in (1, 2, 3, 5, 8):
        out = tmp_path / f"k{n}"
        r = run(*args, "--out-dir", out, env={"PREPARE_TEST_KILL_BEFORE_CHECKPOINT": str(n)})
        assert r.returncode != 0 or not (out / "prepare.checkpoint.json").exists()
        r = run(*args, "--out-dir", out)
        assert r.returncode == 0, r.stderr
        for name in ("train.bin", "val.bin"):
            assert (out / name).read_bytes() == (whole / name).read_bytes(), (n, name)
    ref = reference_docs(rows)
    got = read_bin(whole / "train.bin") + read_bin(whole / "val.bin")
    assert sorted(got) == sorted(flat(ref))


def test_invalid_utf8_in_a_parquet_string_column_is_replaced_or_refused_by_row(tmp_path):
    """A writer that does not check UTF-8 (pyarrow builds such an array from buffers): as in text
    files, each bad byte becomes U+FFFD, counted and located (by row), or --strict-utf8 stops."""
    pq_ = pytest.importorskip("pyarrow.parquet")
    rows = [b"hello world", b"bad \xff byte here", None, b"third \xfe\xfd"]
    raw = pa.array(rows, type=pa.binary())
    pq_.write_table(pa.table({"text": pa.Array.from_buffers(pa.string(), len(raw), raw.buffers())}),
                    tmp_path / "bad.parquet")
    r = run("--input", tmp_path / "bad.parquet", "--out-dir", tmp_path / "o", "--val-fraction", 0)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "3 invalid UTF-8 bytes" in r.stderr and "row 1" in r.stderr, r.stderr
    docs = [b.decode("utf-8", "replace") for b in rows if b]
    assert read_bin(tmp_path / "o" / "train.bin") == flat(reference_docs(docs))
    r = run("--input", tmp_path / "bad.parquet", "--out-dir", tmp_path / "s", "--strict-utf8")
    assert_one_sentence(r, "bad.parquet", "row 1", "--strict-utf8")
