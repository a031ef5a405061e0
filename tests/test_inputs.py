"""The corpora people have: nested folders (the Hugging Face layout and cache), JSON Lines,
compressed files, and a token budget."""
import bz2
import gzip
import json
import lzma
import os
import random
import re
import tempfile
import time
import zlib

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, strategies as st

import corpus
from helpers import (DOCS_300, DOCS_400, assert_user_error, checkpoint, digest, documents_in, flat,
                     jsonl_line, killed_at_random, read_bin, reference_docs, run, split_docs, summary_of,
                     txt_layout, write_parquet)
from strategies import DOCS, SETTINGS, TEXTS
from prep.cli import main
from prep.inputs import kind_of
from prep.streams import Input, STREAM_ERRORS, open_stream

COMPRESSIONS = ["", ".gz", ".bz2", ".xz", ".zst", ".lz4"]


def write_compressed(path, data):
    """data (bytes) into path, compressed as its name says: the standard library's gzip, bz2,
    lzma; pyarrow's zstd and lz4 (frame format, as the zstd and lz4 tools write)."""
    path = str(path)
    if path.endswith(".gz"):
        f = gzip.open(path, "wb")
    elif path.endswith(".bz2"):
        f = bz2.open(path, "wb")
    elif path.endswith(".xz"):
        f = lzma.open(path, "wb")
    elif path.endswith((".zst", ".lz4")):
        f = pa.CompressedOutputStream(path, "zstd" if path.endswith(".zst") else "lz4")
    else:
        f = open(path, "wb")
    with f:
        f.write(data)


def jsonl(rows, key="text"):
    return "".join(json.dumps({"id": i, key: r}) + "\n" for i, r in enumerate(rows)).encode()


def outputs(out):
    return read_bin(os.path.join(out, "train.bin")), read_bin(os.path.join(out, "val.bin"))


@SETTINGS
@given(rows=st.lists(st.one_of(st.none(), TEXTS), min_size=1, max_size=25), comp=st.sampled_from(COMPRESSIONS),
       ext=st.sampled_from([".jsonl", ".json"]), chunk=st.integers(1, 80), workers=st.integers(1, 3))
@pytest.mark.slow
def test_json_lines_plain_or_compressed_give_one_shot_encoding_of_each_value(rows, comp, ext, chunk, workers):
    docs = [r for r in rows if r]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "in" + ext + comp)
        write_compressed(path, jsonl(rows))
        rc = main(["--input", path, "--out-dir", f"{d}/o", "--val-fraction", "0",
                           "--chunk-size", str(chunk), "--workers", str(workers)])
        if not docs:
            assert rc == 1
            return
        assert rc == 0
        train, _ = outputs(f"{d}/o")
    assert train == flat(reference_docs(docs))


@SETTINGS
@given(docs=DOCS, comp=st.sampled_from(COMPRESSIONS), frac=st.sampled_from([0, 0.1, 0.5]),
       chunks=st.tuples(st.integers(1, 80), st.integers(1, 80)))
@pytest.mark.slow
def test_the_same_documents_as_jsonl_txt_and_parquet_give_the_same_files(docs, comp, frac, chunks):
    with tempfile.TemporaryDirectory() as d:
        write_compressed(f"{d}/in.jsonl{comp}", jsonl(docs))
        write_compressed(f"{d}/in.txt{comp}", txt_layout(docs).encode())
        write_parquet(f"{d}/in.parquet", docs, row_group_size=4)
        results = []
        for name, chunk in ((f"in.jsonl{comp}", chunks[0]), (f"in.txt{comp}", chunks[1]), ("in.parquet", chunks[0])):
            assert main(["--input", f"{d}/{name}", "--out-dir", f"{d}/{name}.out", "--val-fraction",
                                 str(frac), "--chunk-size", str(chunk)]) == 0
            results.append(outputs(f"{d}/{name}.out"))
    assert results[0] == results[1] == results[2]
    assert sorted(split_docs(results[0][0]) + split_docs(results[0][1])) == sorted(reference_docs(docs))


def test_nested_folders_symlinks_and_hidden_files_in_sorted_order(tmp_path):
    """A Hugging Face download (and its cache, where names are symlinks to blobs)."""
    root = tmp_path / "snapshots" / "abc123"
    blobs = tmp_path / "blobs"
    for folder in ("sample/10BT", "data/CC-MAIN-2024-10", "data/CC-MAIN-2023-50", ".cache/huggingface", "blobs"):
        (root / folder).mkdir(parents=True)
    blobs.mkdir()
    layout = {"sample/10BT/001_00000.parquet": "s1", "sample/10BT/000_00000.parquet": "s0",
              "data/CC-MAIN-2024-10/000.jsonl.gz": "c24", "data/CC-MAIN-2023-50/000.txt": "c23",
              "data/CC-MAIN-2023-50/000.parquet": "c23p", "top.json": "top"}
    for rel, tag in layout.items():
        docs = [f"Document {k} of {tag}." for k in range(3)]
        target = blobs / tag if rel.startswith("sample") else root / rel  # the sample: symlinks to blobs
        if rel.endswith(".parquet"):
            write_parquet(target, docs)
        elif rel.endswith(".txt"):
            target.write_text(txt_layout(docs), encoding="utf-8")
        else:
            write_compressed(target, jsonl(docs))
        if rel.startswith("sample"):
            os.symlink(target, root / rel)
    write_parquet(root / ".cache/huggingface/hidden.parquet", ["hidden folder"])
    write_parquet(root / "data/.hidden.parquet", ["hidden file"])
    (root / "README.md").write_text("not an input")
    order = ["c23p", "c23", "c24", "s0", "s1", "top"]  # data/CC-MAIN-2023-50/000.parquet < 000.txt ...
    expected = flat(reference_docs([f"Document {k} of {tag}." for tag in order for k in range(3)]))
    r = run("--input", root, "--out-dir", tmp_path / "o", "--val-fraction", 0)
    assert r.returncode == 0, r.stderr
    assert read_bin(tmp_path / "o" / "train.bin") == expected
    sample = flat(reference_docs([f"Document {k} of {tag}." for tag in ("s0", "s1") for k in range(3)]))
    r = run("--input", root / "sample" / "10BT", "--out-dir", tmp_path / "p", "--val-fraction", 0)
    assert read_bin(tmp_path / "p" / "train.bin") == sample
    # the README's hub cache example: a glob to the folder
    r = run("--input", str(tmp_path / "snapshots" / "*" / "sample" / "10BT"), "--out-dir", tmp_path / "g",
            "--val-fraction", 0)
    assert r.returncode == 0, r.stderr
    assert read_bin(tmp_path / "g" / "train.bin") == sample
    r = run("--input", str(root / "data" / "**" / "*.parquet"), "--out-dir", tmp_path / "h", "--val-fraction", 0)
    assert read_bin(tmp_path / "h" / "train.bin") == flat(reference_docs([f"Document {k} of c23p." for k in range(3)]))
    (tmp_path / "only_hidden" / ".git").mkdir(parents=True)
    write_parquet(tmp_path / "only_hidden" / ".git" / "x.parquet", ["x"])
    assert_user_error(run("--input", tmp_path / "only_hidden", "--out-dir", tmp_path / "q"),
                      "only_hidden", "holds no file this script reads")


def test_input_given_twice_reads_every_file_in_the_order_given(tmp_path):
    names = {"a.txt": ["first file's document"], "b.jsonl": ["second file's row"], "c.txt": ["third file's document"]}
    for name, docs in names.items():
        (tmp_path / name).write_bytes(jsonl(docs) if name.endswith(".jsonl") else txt_layout(docs).encode())
    r = run("--input", tmp_path / "c.txt", "--input", tmp_path / "a.txt", tmp_path / "b.jsonl",
            "--out-dir", tmp_path / "o", "--val-fraction", 0)
    assert r.returncode == 0, r.stderr
    expected = names["c.txt"] + names["a.txt"] + names["b.jsonl"]
    assert read_bin(tmp_path / "o" / "train.bin") == flat(reference_docs(expected))


def test_linked_folders_are_read_once_each_and_loops_are_named(tmp_path):
    root, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    (root / "a").mkdir(parents=True)
    (elsewhere / "deep").mkdir(parents=True)
    docs = {"a/1.txt": "In the real folder a.", "b/2.txt": "In a linked folder.", "b/deep/3.jsonl": "Deeper in it."}
    (root / "a" / "1.txt").write_text(txt_layout([docs["a/1.txt"]]))
    (elsewhere / "2.txt").write_text(txt_layout([docs["b/2.txt"]]))
    (elsewhere / "deep" / "3.jsonl").write_bytes(jsonl([docs["b/deep/3.jsonl"]]))
    os.symlink(elsewhere, root / "b")                # a folder link: followed
    os.symlink(elsewhere, root / "c")                # a second link to it: read once, at b
    os.symlink(root, root / "a" / "up")              # a loop through an ancestor
    os.symlink(elsewhere, elsewhere / "deep" / "me")  # a loop inside the linked folder
    r = run("--input", root, "--out-dir", tmp_path / "o", "--val-fraction", 0)
    assert r.returncode == 0, r.stderr
    assert read_bin(tmp_path / "o" / "train.bin") == flat(reference_docs(list(docs.values())))  # sorted paths
    assert r.stderr.count("warning: not following") == 3, r.stderr
    real, here = os.path.realpath(elsewhere), os.path.realpath(root)
    assert f"{root / 'c'}: it leads to {real}, which is read as {root / 'b'}" in r.stderr, r.stderr
    assert f"{root / 'a' / 'up'}: it leads to {here}, a folder above it (a loop)" in r.stderr, r.stderr
    assert f"{root / 'b' / 'deep' / 'me'}: it leads to {real}, a folder above it (a loop)" in r.stderr, r.stderr
    # the linked folder named again: its files are named twice
    assert_user_error(run("--input", root, elsewhere, "--out-dir", tmp_path / "t"), "2.txt is the same file as")
    r = run("--input", root, elsewhere, "--out-dir", tmp_path / "t", "--val-fraction", 0, "--skip-bad-files")
    assert r.returncode == 0 and "3.jsonl is the same file as" in r.stderr, r.stderr
    assert read_bin(tmp_path / "t" / "train.bin") == read_bin(tmp_path / "o" / "train.bin")


@pytest.fixture(scope="module")
def big_gz(tmp_path_factory):
    d = tmp_path_factory.mktemp("gz")
    docs = list(corpus.documents(6 << 20, seed=51))
    write_compressed(d / "corpus.jsonl.gz", jsonl(docs))
    write_compressed(d / "corpus.txt.zst", txt_layout(docs).encode())
    return d, docs


@pytest.mark.slow
@pytest.mark.parametrize("name", ["corpus.jsonl.gz", "corpus.txt.zst"])
def test_sigkill_inside_a_compressed_input_then_resume_gives_identical_files(big_gz, name, tmp_path):
    d, docs = big_gz
    args = ["--input", d / name, "--val-fraction", 0.01, "--chunk-size", 50_000, "--checkpoint-seconds", 0]
    r = run(*args, "--out-dir", tmp_path / "whole")
    assert r.returncode == 0, r.stderr
    out, kills, offsets = tmp_path / "out", 0, []
    inside = lambda: bool((checkpoint(out) or {}).get("unit_state"))
    for _ in killed_at_random([*args, "--out-dir", out], inside, random.Random(7), times=5, pause=0.4):
        kills += 1
        offsets.append(((checkpoint(out) or {}).get("unit_state") or {}).get("offset", 0))
    assert kills >= 2 and max(offsets) > 0, "no kill landed inside the compressed file"
    r = run(*args, "--out-dir", out)
    assert r.returncode == 0, r.stderr
    assert digest(out) == digest(tmp_path / "whole")
    train, val = outputs(out)
    assert sorted(split_docs(train) + split_docs(val)) == sorted(reference_docs(docs))


@pytest.mark.slow
@pytest.mark.parametrize("budget", [1, 5_000, 77_777, 10 ** 9])
def test_max_tokens_gives_the_whole_document_prefix_of_the_full_run(big_gz, budget, tmp_path):
    d, docs = big_gz
    path = d / "corpus.jsonl.gz"
    full = tmp_path / "full"
    assert run("--input", path, "--out-dir", full, "--val-fraction", 0.01).returncode == 0
    r = run("--input", path, "--out-dir", tmp_path / "b", "--val-fraction", 0.01, "--max-tokens", budget,
            "--chunk-size", 3000)
    assert r.returncode == 0, r.stderr
    (train, val), (full_train, full_val) = outputs(tmp_path / "b"), outputs(full)
    assert full_train[:len(train)] == train and full_val[:len(val)] == val  # prefixes of each split
    ref = reference_docs(docs)
    kept = sorted(split_docs(train) + split_docs(val))
    k = len(kept)  # the first k documents, in input order
    assert kept == sorted(ref[:k])
    total = sum(map(len, ref[:k]))
    assert total >= min(budget, len(flat(ref))) and total - len(ref[k - 1]) < budget
    if budget < len(flat(ref)):
        assert "stopped at --max-tokens" in r.stdout and "corpus.jsonl.gz" in r.stdout
        summary = json.loads((tmp_path / "b" / "summary.json").read_text())
        assert summary["budget"]["max_tokens"] == budget
    r = run("--input", path, "--out-dir", tmp_path / "b", "--val-fraction", 0.01, "--max-tokens", budget + 1)
    assert_user_error(r, "--max-tokens", "--restart")


def test_max_tokens_resumes_to_the_same_bytes(big_gz, tmp_path):
    d, _ = big_gz
    args = ["--input", d / "corpus.txt.zst", "--max-tokens", 900_000, "--chunk-size", 30_000, "--checkpoint-seconds", 0]
    assert run(*args, "--out-dir", tmp_path / "whole").returncode == 0
    inside = lambda: bool((checkpoint(tmp_path / "out") or {}).get("unit_state"))
    assert len(list(killed_at_random([*args, "--out-dir", tmp_path / "out"], inside, random.Random(3), times=2))) >= 1
    r = run(*args, "--out-dir", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert digest(tmp_path / "out") == digest(tmp_path / "whole")


# --- folders: two names of one file, configs and earlier output -----------------------------------

def test_two_names_of_one_blob_are_two_files(tmp_path):
    """The Hugging Face cache links files of the same content to one blob."""
    blobs, snap = tmp_path / "blobs", tmp_path / "snapshot"
    blobs.mkdir()
    snap.mkdir()
    (blobs / "sha").write_text(txt_layout(DOCS_300))
    os.symlink(blobs / "sha", snap / "000.txt")
    os.symlink(blobs / "sha", snap / "001.txt")
    r = run("--input", snap, "--out-dir", tmp_path / "o", "--val-fraction", 0)
    assert r.returncode == 0, r.stderr
    assert summary_of(tmp_path / "o")["train"]["documents"] == 2 * len(DOCS_300)


def test_json_configs_in_a_folder_are_left_out_whatever_their_shape(tmp_path):
    """A .json in a folder that is not JSON Lines (a pretty array, one line over 64 KiB) is left out
    with a word, whatever its shape."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "data.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in DOCS_300))
    (d / "files.json").write_text(json.dumps(["a.jsonl", "b.jsonl"], indent=1))  # a pretty array
    (d / "meta.json").write_text(json.dumps({"sizes": list(range(20_000))}))  # one line over 64 KiB
    r = run("--input", d, "--out-dir", tmp_path / "o", "--val-fraction", 0)
    assert r.returncode == 0, r.stderr
    assert "files.json" in r.stderr and "meta.json" in r.stderr
    assert summary_of(tmp_path / "o")["train"]["documents"] == len(DOCS_300)


def test_a_folder_with_earlier_output_and_configs_reads_only_the_data(tmp_path):
    """A folder holding the tool's own earlier output and .json configs that are not JSON Lines is
    read for its data alone, the files left out named."""
    data = tmp_path / "data" / "fineweb"
    data.mkdir(parents=True)
    (data / "train_fineweb.txt").write_text(txt_layout(DOCS_400))
    assert run("--input", data / "train_fineweb.txt", "--out-dir", data).returncode == 0
    (data / "config.json").write_text(json.dumps({"vocab_size": 50304, "n_layer": 12}, indent=2))
    (data / "meta.json").write_text(json.dumps({"source": "fineweb"}))  # one line, no text key
    r = run("--input", data, "--out-dir", tmp_path / "elsewhere")
    assert r.returncode == 0, r.stderr
    assert "config.json" in r.stderr and "meta.json" in r.stderr  # (said, not silent)
    assert documents_in(tmp_path / "elsewhere") == len(DOCS_400)
    assert [p["path"] for p in summary_of(tmp_path / "elsewhere")["inputs"]] == [str(data / "train_fineweb.txt")]


# --- compressed streams as Python reads them; long JSON lines -------------------------------------

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


@pytest.mark.unit
def test_compressed_files_are_read_as_pythons_own_readers_read_them(tmp_path):
    """Padding and trailing bytes after the last member, as gzip.open, bz2.open and lzma.open
    take them; a gzip file cut short gives out all zlib can (the last match included)."""
    text = txt_layout(DOCS_300).encode()
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


# --- bad input -------------------------------------------------------------------------------

DOCS_OK = [f"Document number {i}: some words and a number {i * 7}." for i in range(4000)]


@pytest.mark.parametrize("name", ["a.jsonl.gz", pytest.param("a.txt.bz2", marks=pytest.mark.slow), "a.jsonl.xz",
                                  "a.txt.zst"])
def test_a_truncated_compressed_file_stops_with_its_name_and_keeps_what_came_before(name, tmp_path):
    """(3 MB of text: bzip2 compresses 900 kB blocks, and a block cut short gives nothing.)"""
    docs = DOCS_OK * 15
    data = jsonl(docs) if ".jsonl" in name else txt_layout(docs).encode()
    (tmp_path / "full").mkdir()
    write_compressed(tmp_path / "full" / name, data)
    whole = (tmp_path / "full" / name).read_bytes()
    (tmp_path / name).write_bytes(whole[:len(whole) * 2 // 3])
    args = ["--input", tmp_path / name, "--out-dir", tmp_path / "o", "--val-fraction", 0, "--chunk-size", 5000]
    r = run(*args)
    assert_user_error(r, name, "damaged or cut short", "--skip-bad-files")
    assert not (tmp_path / "o" / "train.bin").exists()
    r = run(*args, "--skip-bad-files")
    assert r.returncode == 0, r.stderr
    assert "leaving out the rest of" in r.stderr and name in r.stderr
    train = split_docs(read_bin(tmp_path / "o" / "train.bin"))
    whole = len(train) - (".txt" in name)  # (a txt's last document is kept as far as it could be read)
    assert 0 < len(train) < len(docs) and train[:whole] == reference_docs(docs[:whole])


def test_a_corrupt_stream_in_the_middle_is_named(tmp_path):
    write_compressed(tmp_path / "a.jsonl.bz2", jsonl(DOCS_OK))
    data = bytearray((tmp_path / "a.jsonl.bz2").read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = b"\x55" * 64
    (tmp_path / "a.jsonl.bz2").write_bytes(bytes(data))
    r = run("--input", tmp_path / "a.jsonl.bz2", "--out-dir", tmp_path / "o")
    assert_user_error(r, "a.jsonl.bz2", "bzip2 stream is damaged")  # (none of the damaged block is read)


def test_bad_json_lines_name_the_file_line_and_key(tmp_path):
    good = jsonl(DOCS_OK[:3000])
    cases = {
        "notjson.jsonl": (good + b'{"text": "cut off\n' + jsonl(["after"]), ["line 3,001 is not JSON"]),
        "nokey.jsonl": (good + b'{"content": "x", "id": 3}\n', ["line 3,001", "no key 'text'", "content, id", "--text-column"]),
        "number.jsonl": (good + b'{"text": 42}\n', ["line 3,001", "'text' holds int", "not text"]),
        "array.json": (json.dumps([{"text": "a"}, {"text": "b"}]).encode(), ["one big JSON array", "jq"]),
        "fake.jsonl.gz": (good, ["not a gzip file"]),
    }
    for name, (data, words) in cases.items():
        (tmp_path / name).write_bytes(data)
        r = run("--input", tmp_path / name, "--out-dir", tmp_path / name.replace(".", "_"), "--chunk-size", 3000)
        assert_user_error(r, name, *words)
    # a unit far into a big file still names the right line
    (tmp_path / "far.jsonl").write_bytes(good * 3 + b"nonsense\n")
    assert main(["--input", str(tmp_path / "far.jsonl"), "--out-dir", str(tmp_path / "far")],
                        unit_bytes=50_000) == 1
    r = run("--input", tmp_path / "far.jsonl", "--out-dir", tmp_path / "far2", "--skip-bad-files", "--val-fraction", 0)
    assert r.returncode == 0 and "line 9,001" in r.stderr, r.stderr
    assert len(split_docs(read_bin(tmp_path / "far2" / "train.bin"))) == 9000


def test_a_json_line_with_an_integer_of_any_length_is_json(tmp_path):
    """Python 3.11+ refuses int() of more than 4,300 digits; such a line is valid JSON all the same."""
    docs = [f"Row {i} with a long number beside it." for i in range(300)]
    big = {0: "1" + "0" * 4400 + "7", 150: "-" + "9" * 20000, 299: "3" * 4301}  # (line 1 is checked first)
    lines = "".join(f'{{"id": {big.get(i, i)}, "text": {json.dumps(d)}, "n": [{big.get(i, 1)}]}}\n'
                    for i, d in enumerate(docs))
    (tmp_path / "big.jsonl").write_text(lines)
    for extra in ([], ["--skip-bad-files"]):
        out = tmp_path / f"o{len(extra)}"
        r = run("--input", tmp_path / "big.jsonl", "--out-dir", out, "--val-fraction", 0, *extra)
        assert r.returncode == 0, r.stderr
        assert "not JSON" not in r.stderr and "bad line" not in r.stderr, r.stderr
        assert read_bin(out / "train.bin") == flat(reference_docs(docs))
    (tmp_path / "text.jsonl").write_text(lines + f'{{"text": {"4" * 5000}}}\n')
    assert_user_error(run("--input", tmp_path / "text.jsonl", "--out-dir", tmp_path / "t"), "line 301", "'text' holds")


def test_a_byte_order_mark_and_blank_lines(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'\xef\xbb\xbf\n{"text": "hello world"}\n\n  \n{"text": "again"}')
    r = run("--input", tmp_path / "a.jsonl", "--out-dir", tmp_path / "o", "--val-fraction", 0)
    assert r.returncode == 0, r.stderr
    assert read_bin(tmp_path / "o" / "train.bin") == flat(reference_docs(["hello world", "again"]))


def test_text_key_and_null_values(tmp_path):
    rows = ["first", None, "", "second <|endoftext|> is text", "  "]
    write_compressed(tmp_path / "a.jsonl", jsonl(rows, key="content"))
    r = run("--input", tmp_path / "a.jsonl", "--out-dir", tmp_path / "o", "--text-column", "content",
            "--val-fraction", 0)
    assert r.returncode == 0, r.stderr
    assert read_bin(tmp_path / "o" / "train.bin") == flat(reference_docs(["first", "second <|endoftext|> is text", "  "]))
    assert "2 null or empty rows" in r.stderr


# --- --max-tokens names the last document it kept ------------------------------------------------

BOUNDARY = re.compile(r"\s*(?:<\|endoftext\|>\s*)+")


def kept_documents(docs, budget):
    """How many whole documents --max-tokens keeps: up to the first end at or after the budget."""
    total = 0
    for k, doc in enumerate(reference_docs(docs), 1):
        total += len(doc)
        if total >= budget:
            return k


def txt_case(path):
    """A txt file with non-ASCII text, and text of whitespace alone (U+00A0 too) between markers;
    its documents and, for each, the byte where the marker after it starts."""
    text = "".join(f"Dokument {i} — café {'ü' * (i % 4)}\n<|endoftext|>" + (" \u00a0 <|endoftext|>" if i % 5 == 0 else "")
                   for i in range(3000))
    path.write_text(text, encoding="utf-8")
    docs, ends, start = [], [], 0
    for m in BOUNDARY.finditer(text):
        if text[start:m.start()].strip():
            docs.append(text[start:m.start()])
            ends.append(f"ends before byte {len(text[:text.index('<|endoftext|>', m.start())].encode()):,}")
        start = m.end()
    return docs, ends


def jsonl_case(path):
    """JSON Lines with blank lines and empty or null text between: documents and their lines."""
    lines = [json.dumps({"text": f"line {i} — {'ö' * (i % 3)} words" if i % 6 else ["", None][i % 12 // 6]})
             if i % 4 != 3 else "" for i in range(8000)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    kept = [(json.loads(line)["text"], n) for n, line in enumerate(lines, 1) if line and json.loads(line)["text"]]
    return [t for t, _ in kept], [f"line {n:,}" for _, n in kept]


def parquet_case(path):
    rows = [f"row {i} has words" if i % 6 else ["", None][i % 12 // 6] for i in range(8000)]
    write_parquet(path, rows, row_group_size=700)
    kept = [(t, r) for r, t in enumerate(rows) if t]
    return [t for t, _ in kept], [f"row {r:,}" for _, r in kept]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["a.txt", "a.jsonl", "a.parquet", "a.txt.gz"])
@pytest.mark.parametrize("budget", [1, 20_001])
def test_max_tokens_names_the_place_of_the_last_document_kept(name, budget, tmp_path):
    path = tmp_path / name
    kind = name.split(".")[1]
    docs, places = {"txt": txt_case, "jsonl": jsonl_case, "parquet": parquet_case}[kind](tmp_path / f"plain.{kind}")
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress((tmp_path / f"plain.{kind}").read_bytes()))
    else:
        os.replace(tmp_path / f"plain.{kind}", path)
    k = kept_documents(docs, budget)
    want = f"stopped at --max-tokens {budget:,}: the last document kept is " + (
        f"the one of {path} that {places[k - 1]}{' of its text' if name.endswith('.gz') else ''}"
        if kind == "txt" else f"{path} {places[k - 1]}")
    r = run("--input", path, "--out-dir", tmp_path / "o", "--max-tokens", budget, "--val-fraction", 0,
            "--chunk-size", 3000)
    assert r.returncode == 0 and want in r.stdout, (want, r.stdout + r.stderr)
    assert len(split_docs(read_bin(tmp_path / "o" / "train.bin"))) == k
    resumed = ["--input", path, "--out-dir", tmp_path / "resumed", "--max-tokens", budget, "--val-fraction", 0,
               "--chunk-size", 3000, "--checkpoint-seconds", 0]
    if budget > 1:  # stopped inside the input, then resumed from there
        assert run(*resumed, env={"PREPARE_TEST_KILL_BEFORE_CHECKPOINT": "3"}).returncode < 0
        r = run(*resumed)
        assert r.returncode == 0 and want in r.stdout, (want, r.stdout + r.stderr)
    if kind != "parquet" and not name.endswith(".gz"):  # units that start inside the file, read here
        out = tmp_path / "units"
        assert main(["--input", str(path), "--out-dir", str(out), "--max-tokens", str(budget),
                             "--val-fraction", "0", "--chunk-size", "3000"], unit_bytes=5000) == 0
        assert json.loads((out / "summary.json").read_text())["budget"]["stopped_at"] == want.split(" is ", 1)[1]
