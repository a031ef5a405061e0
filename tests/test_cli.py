"""The command as a user runs it: inputs, outputs nanoGPT reads, summary, messages."""
import gzip
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet  # noqa: F401  (pa.parquet)
import pytest
import tiktoken

import corpus
from helpers import (DOCS_400, GPT2, ROOT, SCRIPT, assert_user_error, flat, nothing_written, read_bin,
                     reference_docs, run, split_docs, txt_documents, txt_layout, write_parquet)

DOCS = ["First document.\n\nWith a paragraph.", "Second one — with ünïcödé and 中文.",
        "Third: numbers 12345 and it's over."]


def test_default_input_and_output_are_next_to_the_script(tmp_path):
    """Copied into nanoGPT's data/fineweb/, run with no options: reads train_fineweb.txt there,
    writes train.bin/val.bin there, and nothing nanoGPT would misread (no meta.pkl)."""
    folder = tmp_path / "nanoGPT" / "data" / "fineweb"
    shutil.copytree(os.path.dirname(SCRIPT), folder, ignore=shutil.ignore_patterns("__pycache__"))
    product = set(os.listdir(folder))
    docs = DOCS * 400
    (folder / "train_fineweb.txt").write_text(txt_layout(docs), encoding="utf-8")
    r = subprocess.run([sys.executable, "data/fineweb/prepare.py"], cwd=tmp_path / "nanoGPT",
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert sorted(set(os.listdir(folder)) - product) == ["summary.json", "train.bin", "train_fineweb.txt", "val.bin"]
    train, val = read_bin(folder / "train.bin"), read_bin(folder / "val.bin")
    ref = reference_docs(docs)
    assert len(val) > 0 and sorted(split_docs(train) + split_docs(val)) == sorted(ref)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["dtype"] == "uint16" and summary["encoding"] == "gpt2"
    assert summary["train"] == {"tokens": len(train), "documents": len(split_docs(train))}
    assert summary["val"] == {"tokens": len(val), "documents": len(split_docs(val))}
    assert summary["inputs"] == [{"path": str(folder / "train_fineweb.txt"),
                                  "bytes": os.path.getsize(folder / "train_fineweb.txt")}]
    assert "done:" in r.stdout and "train.bin" in r.stdout


def test_root_entry_runs_the_same_code(tmp_path):
    (tmp_path / "in.txt").write_text(txt_layout(DOCS), encoding="utf-8")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "prepare.py"), "--input", tmp_path / "in.txt",
                        "--out-dir", tmp_path / "o", "--val-fraction", "0"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert read_bin(tmp_path / "o" / "train.bin") == flat(reference_docs(DOCS))


def test_folders_globs_and_lists_are_read_in_order_and_each_file_ends_a_document(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "b.txt").write_text("no marker at the end", encoding="utf-8")
    write_parquet(d / "a.parquet", ["row one", None, "row two"])
    (d / "c.txt").write_text("<|endoftext|>starts with a marker<|endoftext|>", encoding="utf-8")
    (d / "notes.md").write_text("not an input")
    expected = flat(reference_docs(["row one", "row two", "no marker at the end", "starts with a marker"]))
    for inputs in ([d], [d / "a.parquet", d / "b.txt", d / "c.txt"], [str(d) + "/*.parquet", str(d) + "/*.txt"]):
        out = tmp_path / f"o{len(os.listdir(tmp_path))}"
        r = run("--input", *inputs, "--out-dir", out, "--val-fraction", 0)
        assert r.returncode == 0, r.stderr
        assert read_bin(out / "train.bin") == expected
    r = run("--input", d / "c.txt", d / "b.txt", "--out-dir", tmp_path / "rev", "--val-fraction", 0)
    assert read_bin(tmp_path / "rev" / "train.bin") == flat(reference_docs(
        ["starts with a marker", "no marker at the end"]))


def test_small_splits_are_warned_about(tmp_path):
    (tmp_path / "in.txt").write_text(txt_layout(DOCS), encoding="utf-8")
    r = run("--input", tmp_path / "in.txt", "--out-dir", tmp_path / "o")
    assert r.returncode == 0
    assert "train.bin holds only" in r.stderr and "val.bin holds only" in r.stderr
    assert "block_size" in r.stderr


def test_output_reads_back_with_memmap_as_train_py_does(tmp_path):
    docs = DOCS * 2000
    (tmp_path / "in.txt").write_text(txt_layout(docs), encoding="utf-8")
    assert run("--input", tmp_path / "in.txt", "--out-dir", tmp_path / "o", "--val-fraction", 0.05).returncode == 0
    for name in ("train.bin", "val.bin"):
        data = np.memmap(tmp_path / "o" / name, dtype=np.uint16, mode="r")
        assert len(data) > 1024 and data.max() < GPT2.n_vocab
    train, val = read_bin(tmp_path / "o" / "train.bin"), read_bin(tmp_path / "o" / "val.bin")
    assert sorted(split_docs(train) + split_docs(val)) == sorted(reference_docs(docs))


@pytest.mark.slow
def test_worker_count_does_not_change_the_bytes(tmp_path):
    """Many units in flight at once, txt and parquet: identical files for 1, 2 and 3 workers."""
    corpus.write_txt(tmp_path / "a.txt", 1 << 20, seed=5)
    corpus.write_parquet(tmp_path / "b.parquet", 1 << 20, seed=6, rows_per_group=50)
    results = []
    for workers in (1, 2, 3):
        out = tmp_path / f"w{workers}"
        r = run("--input", tmp_path / "a.txt", tmp_path / "b.parquet", "--out-dir", out,
                "--workers", workers, "--chunk-size", 30000, "--val-fraction", 0.01)
        assert r.returncode == 0, r.stderr
        results.append([(out / n).read_bytes() for n in ("train.bin", "val.bin")])
    assert results[0] == results[1] == results[2]
    docs = txt_documents((tmp_path / "a.txt").read_text(encoding="utf-8"))
    docs += pa.parquet.read_table(tmp_path / "b.parquet").column("text").to_pylist()
    train = np.frombuffer(results[0][0], np.uint16).tolist()
    val = np.frombuffer(results[0][1], np.uint16).tolist()
    assert sorted(split_docs(train) + split_docs(val)) == sorted(reference_docs(docs))


def test_no_progress_line_promises_about_0_s(tmp_path):
    """Where the run is nearly done, a line gives no time left rather than 'about 0 s left'."""
    corpus.write_txt(tmp_path / "a.txt", 4 << 20, seed=5)
    r = subprocess.run([sys.executable, SCRIPT, "--input", tmp_path / "a.txt", "--out-dir", tmp_path / "o"],
                       capture_output=True, text=True)   # (output to a pipe: a line at each tenth)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("tokenizing: ")]
    assert len(lines) >= 5, r.stderr
    assert not [line for line in lines if "about 0 s left" in line], r.stderr


def test_options_that_cannot_work_are_refused_before_any_work(tmp_path):
    """Each in one sentence, before any file is written (else: a --prefix with a folder failed at
    the end, an empty one was replaced in silence, --max-tokens not above --val-tokens ended in a
    refusal that the input is too small, a huge --chunk-size read the whole file or failed with a
    traceback); the corrected command then runs."""
    (tmp_path / "in.txt").write_text(txt_layout(DOCS * 50), encoding="utf-8")
    out = tmp_path / "o"
    base = ["--input", tmp_path / "in.txt", "--out-dir", out]
    shards = ["--format", "llmc", "--val-tokens", 100]
    for extra, words in (([*shards, "--prefix", "a/b"], ["--prefix 'a/b'", "folder"]),
                         ([*shards, "--prefix", ""], ["--prefix ''", "empty"]),
                         ([*shards, "--max-tokens", 100], ["--max-tokens 100", "--val-tokens 100", "train"]),
                         (["--format", "npy", "--max-tokens", 5000], ["--max-tokens 5,000", "--val-tokens 100,000,000",
                                                                       "the default for --format npy"]),
                         (["--chunk-size", 10 ** 10], ["--chunk-size", "at most"]),
                         (["--chunk-size", 10 ** 11], ["--chunk-size", "at most"])):
        r = run(*base, *extra)
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        assert [line for line in r.stderr.splitlines() if "error" in line] == \
            [line for line in r.stderr.splitlines() if line.startswith("prepare.py: error: ")], r.stderr
        for w in words:
            assert w in r.stderr, (w, r.stderr)
        assert not out.exists()
    r = run(*base, *shards, "--prefix", "mine", "--max-tokens", 500)
    assert r.returncode == 0, r.stderr
    assert sorted(n for n in os.listdir(out) if n.endswith(".bin")) == ["mine_train_000001.bin", "mine_val_000000.bin"]
def test_numbers_that_mean_nothing_are_refused(tmp_path):
    """Numbers that mean nothing (negative, zero, too small or too big) are refused, nothing written."""
    (tmp_path / "a.txt").write_text(txt_layout(DOCS_400))
    base = ["--input", tmp_path / "a.txt", "--out-dir", tmp_path / "o"]
    for extra, word in ((["--max-tokens", -5], "--max-tokens"), (["--max-tokens", 0], "--max-tokens"),
                        (["--shard-tokens", 1000], "--shard-tokens"), (["--checkpoint-seconds", -1], "--checkpoint-seconds"),
                        (["--val-tokens", -1], "--val-tokens"),
                        (["--format", "llmc", "--shard-tokens", 2 ** 31], "--shard-tokens")):
        r = run(*base, *extra)
        assert_user_error(r, word)
        assert nothing_written(tmp_path / "o")


def test_redirected_output_has_plain_progress_lines(tmp_path):
    """Progress into a file (not a terminal) comes as plain lines, rising to 100%."""
    (tmp_path / "a.txt").write_text(txt_layout(DOCS_400 * 40))
    with open(tmp_path / "log", "w") as log:
        r = subprocess.run([sys.executable, SCRIPT, "--input", tmp_path / "a.txt", "--out-dir", tmp_path / "o",
                            "--chunk-size", "20000"], stdout=log, stderr=subprocess.STDOUT)
    assert r.returncode == 0
    text = (tmp_path / "log").read_text()
    assert "\r" not in text
    percents = [int(p) for p in re.findall(r"^tokenizing: (\d+)% \(.+ of .+\), [\d,]+ tokens, [\d.]+M tokens/s",
                                           text, re.M)]
    assert len(percents) >= 3 and percents == sorted(percents) and percents[-1] == 100, text


def test_a_shard_run_shows_progress_inside_a_compressed_unit(tmp_path):
    """A --shard run shows progress inside its one compressed unit, not only at its end."""
    with gzip.open(tmp_path / "big.txt.gz", "wt") as f:
        f.write(txt_layout(DOCS_400 * 60))
    r = run("--input", tmp_path / "big.txt.gz", "--out-dir", tmp_path / "o", "--shard", "0/1",
            "--chunk-size", 20000)
    assert r.returncode == 0, r.stderr
    percents = [int(p) for p in re.findall(r"^share 0/1: (\d+)%", r.stderr, re.M)]
    assert any(0 < p < 100 for p in percents), r.stderr  # (one unit: before, progress came at its end)


# --- messages that say what is true ----------------------------------------------------------

@pytest.mark.parametrize("encoding", ["gpt2", "cl100k_base"])
def test_a_doc_token_that_is_no_special_token_is_named_once_with_the_special_tokens(encoding, tmp_path):
    (tmp_path / "in.txt").write_text(txt_layout(DOCS), encoding="utf-8")
    r = run("--input", tmp_path / "in.txt", "--out-dir", tmp_path / "o", "--encoding", encoding, "--doc-token", "FOO")
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    line = r.stderr.strip()
    assert line.count("FOO") == 1 and f"of {encoding};" in line, line
    for token in tiktoken.get_encoding(encoding).special_tokens_set:
        assert token in line, (token, line)


@pytest.mark.parametrize("mode", [["--shard", "0/2"], ["--merge"]])
def test_verify_with_shard_or_merge_is_refused_not_ignored(mode, tmp_path):
    (tmp_path / "in.txt").write_text(txt_layout(DOCS * 500), encoding="utf-8")
    out = tmp_path / "o"
    assert run("--input", tmp_path / "in.txt", "--out-dir", out).returncode == 0
    r = run("--verify", "--out-dir", out, *mode)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "--verify" in r.stderr and mode[0] in r.stderr and "ok:" not in r.stdout, r.stdout + r.stderr


def test_plain_words_for_one_and_for_the_default_input(tmp_path):
    """One document is "1 document"; the copied folder run without --input says to name the input."""
    (tmp_path / "one.txt").write_text("A single document.")
    r = run("--input", tmp_path / "one.txt", "--out-dir", tmp_path / "o", "--val-fraction", 0)
    assert r.returncode == 0 and "(1 document," in r.stdout, r.stdout
    assert "1 documents" not in r.stdout + r.stderr
    copy = tmp_path / "nanogpt" / "data" / "fineweb"   # (the folder, as the README copies it)
    shutil.copytree(os.path.dirname(SCRIPT), copy, ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run([sys.executable, copy / "prepare.py"], capture_output=True, text=True)
    assert_user_error(r, "--input", "train_fineweb.txt")
