"""A new user's first hour, through the command line as they run it: nothing left out without a
word, no dead end after a harmless mistake, the tool's own files never read, progress that fits
where it goes, numbers that mean nothing refused, plain words (issue 15, one test per item)."""
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np

from helpers import (SCRIPT, assert_user_error, checkpoint, flat, read_bin, reference_docs, run, start,
                     txt_documents, txt_layout, wait_for_progress, write_parquet)

DOCS = [f"Document {i}: a few words about the number {i * 13}, and then some more." for i in range(400)]


def summary_of(out):
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


def documents_in(out):
    s = summary_of(out)
    return s["train"]["documents"] + s["val"]["documents"]


def nothing_written(out):
    return not os.path.exists(out) or not [n for n in os.listdir(out) if not n.startswith(".prepare")]


# 1. a broken link in a folder (an interrupted Hugging Face download) is not skipped in silence
def test_a_broken_link_in_a_folder_is_refused_or_skipped_with_a_word(tmp_path):
    d = tmp_path / "snapshot"
    d.mkdir()
    (d / "000.txt").write_text(txt_layout(DOCS[:200]))
    os.symlink(tmp_path / "blobs" / "gone", d / "001.txt")
    r = run("--input", d, "--out-dir", tmp_path / "o")
    assert_user_error(r, "001.txt", "missing", "--skip-bad-files")
    assert nothing_written(tmp_path / "o")
    r = run("--input", d, "--out-dir", tmp_path / "o", "--skip-bad-files")
    assert r.returncode == 0, r.stderr
    assert "001.txt" in r.stderr and "warning" in r.stderr
    s = summary_of(tmp_path / "o")
    assert any(p.endswith("001.txt") for p in s["skipped_files"]) and documents_in(tmp_path / "o") == 200


# 2. a harmless mistake leaves no dead end: every input is checked before anything is written
def test_the_corrected_command_runs_in_the_same_folder(tmp_path):
    (tmp_path / "content.jsonl").write_text("".join(json.dumps({"content": d}) + "\n" for d in DOCS))
    out = tmp_path / "o"
    r = run("--input", tmp_path / "content.jsonl", "--out-dir", out)
    assert_user_error(r, "content.jsonl", "--text-column")
    assert checkpoint(out) is None and nothing_written(out)
    r = run("--input", tmp_path / "content.jsonl", "--out-dir", out, "--text-column", "content")
    assert r.returncode == 0, r.stderr
    assert documents_in(out) == len(DOCS)
    # the same after a UTF-16 file, converted as the message says
    (tmp_path / "u.txt").write_bytes(txt_layout(DOCS).encode("utf-16"))
    r = run("--input", tmp_path / "u.txt", "--out-dir", tmp_path / "u")
    assert_user_error(r, "UTF-16", "iconv")
    assert checkpoint(tmp_path / "u") is None
    (tmp_path / "u.txt").write_text(txt_layout(DOCS), encoding="utf-8")
    assert run("--input", tmp_path / "u.txt", "--out-dir", tmp_path / "u").returncode == 0


def test_a_checkpoint_that_recorded_no_tokens_does_not_block_other_options(tmp_path):
    (tmp_path / "a.txt").write_text(txt_layout(DOCS))
    out = tmp_path / "o"
    out.mkdir()
    (out / "prepare.checkpoint.json").write_text(json.dumps(dict(fingerprint={"other": 1}, files=None)))
    r = run("--input", tmp_path / "a.txt", "--out-dir", out, "--val-fraction", 0.01)
    assert r.returncode == 0, r.stderr


# 3. the tool's own files, and .json files that are not JSON Lines, are not read from a folder
def test_a_folder_with_earlier_output_and_configs_reads_only_the_data(tmp_path):
    data = tmp_path / "data" / "fineweb"
    data.mkdir(parents=True)
    (data / "train_fineweb.txt").write_text(txt_layout(DOCS))
    assert run("--input", data / "train_fineweb.txt", "--out-dir", data).returncode == 0
    (data / "config.json").write_text(json.dumps({"vocab_size": 50304, "n_layer": 12}, indent=2))
    (data / "meta.json").write_text(json.dumps({"source": "fineweb"}))  # one line, no text key
    r = run("--input", data, "--out-dir", tmp_path / "elsewhere")
    assert r.returncode == 0, r.stderr
    assert "config.json" in r.stderr and "meta.json" in r.stderr  # (said, not silent)
    assert documents_in(tmp_path / "elsewhere") == len(DOCS)
    assert [p["path"] for p in summary_of(tmp_path / "elsewhere")["inputs"]] == [str(data / "train_fineweb.txt")]


# 4. a file named twice
def test_a_file_named_twice_is_refused_or_read_once(tmp_path):
    d = tmp_path / "pq"
    d.mkdir()
    write_parquet(d / "batch_000000.parquet", DOCS[:200])
    write_parquet(d / "batch_000001.parquet", DOCS[200:])
    r = run("--input", d, d / "batch_000001.parquet", "--out-dir", tmp_path / "o")
    assert_user_error(r, "batch_000001.parquet", "named", "once")
    assert nothing_written(tmp_path / "o")
    r = run("--input", d, d / "batch_000001.parquet", "--out-dir", tmp_path / "o", "--skip-bad-files")
    assert r.returncode == 0 and "read once" in r.stderr, r.stderr
    assert documents_in(tmp_path / "o") == len(DOCS)


# 5. and 6. --merge names what changed and which shard to rerun; one set of parts, several outputs
def shard_files(tmp_path):
    files = []
    for i in range(4):
        files.append(tmp_path / f"in{i}.txt")
        files[-1].write_text(txt_layout(DOCS[i * 100:(i + 1) * 100]))
    return files


def test_merge_names_the_changed_input_and_the_shard_to_rerun(tmp_path):
    files, out = shard_files(tmp_path), tmp_path / "o"
    args = ["--input", *files, "--out-dir", out, "--val-fraction", 0.01]
    for i in range(2):
        assert run(*args, "--shard", f"{i}/2").returncode == 0
    os.utime(files[2], (1, 1))  # touch: another modification time
    r = run(*args, "--merge")
    assert_user_error(r, "in2.txt", "changed", "--shard")
    assert "unit 0" not in r.stderr
    for i in range(2):
        assert run(*args, "--shard", f"{i}/2").returncode == 0
    os.remove(out / "parts" / "unit0000003.bin")
    r = run(*args, "--merge")
    assert_user_error(r, "unit 3", "--shard 1/2")
    assert "--shard 0/2" not in r.stderr


def test_one_set_of_parts_merges_into_several_outputs(tmp_path):
    files, parts = shard_files(tmp_path), tmp_path / "parts"
    common = ["--input", *files, "--parts-dir", parts]
    for i in range(2):
        assert run(*common, "--out-dir", tmp_path / "x", "--shard", f"{i}/2").returncode == 0
    assert not (tmp_path / "x" / "parts").exists()
    r = run(*common, "--out-dir", tmp_path / "bin", "--merge", "--val-fraction", 0.01)
    assert r.returncode == 0, r.stderr
    r = run(*common, "--out-dir", tmp_path / "llmc", "--merge", "--format", "llmc", "--val-tokens", 1000)
    assert r.returncode == 0, r.stderr
    one = tmp_path / "one"
    assert run("--input", *files, "--out-dir", one, "--val-fraction", 0.01).returncode == 0
    for name in ("train.bin", "val.bin"):
        assert (tmp_path / "bin" / name).read_bytes() == (one / name).read_bytes()
    llmc = sorted((p for p in os.listdir(tmp_path / "llmc") if p.endswith(".bin")), key=lambda p: p[-10:])
    tokens = np.concatenate([np.fromfile(tmp_path / "llmc" / p, np.uint16)[512:] for p in llmc])
    assert tokens.tolist()[1:] + [50256] == flat(reference_docs(DOCS))


# 7. and 8. progress where output is not a terminal: plain lines, and inside a shard's unit
def test_redirected_output_has_plain_progress_lines(tmp_path):
    (tmp_path / "a.txt").write_text(txt_layout(DOCS * 40))
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
    with gzip.open(tmp_path / "big.txt.gz", "wt") as f:
        f.write(txt_layout(DOCS * 60))
    r = run("--input", tmp_path / "big.txt.gz", "--out-dir", tmp_path / "o", "--shard", "0/1",
            "--chunk-size", 20000)
    assert r.returncode == 0, r.stderr
    percents = [int(p) for p in re.findall(r"^shard 0/1: (\d+)%", r.stderr, re.M)]
    assert any(0 < p < 100 for p in percents), r.stderr  # (one unit: before, progress came at its end)


# 9. numbers that mean nothing
def test_numbers_that_mean_nothing_are_refused(tmp_path):
    (tmp_path / "a.txt").write_text(txt_layout(DOCS))
    base = ["--input", tmp_path / "a.txt", "--out-dir", tmp_path / "o"]
    for extra, word in ((["--max-tokens", -5], "--max-tokens"), (["--max-tokens", 0], "--max-tokens"),
                        (["--shard-tokens", 1000], "--shard-tokens"), (["--checkpoint-seconds", -1], "--checkpoint-seconds"),
                        (["--val-tokens", -1], "--val-tokens"),
                        (["--format", "llmc", "--shard-tokens", 2 ** 31], "--shard-tokens")):
        r = run(*base, *extra)
        assert_user_error(r, word)
        assert nothing_written(tmp_path / "o")


# 10. a small input to a shard format is refused before any work where the size is sure
def test_a_small_plain_parquet_input_is_refused_before_any_work(tmp_path):
    write_parquet(tmp_path / "small.parquet", DOCS, use_dictionary=False)
    r = run("--input", tmp_path / "small.parquet", "--out-dir", tmp_path / "o", "--format", "llmc")
    assert_user_error(r, "at most", "--val-tokens")
    assert checkpoint(tmp_path / "o") is None and nothing_written(tmp_path / "o")


# 11. a second stop signal says what was kept and how to go on
def test_a_second_stop_signal_says_what_was_kept(tmp_path):
    (tmp_path / "a.txt").write_text(txt_layout(DOCS * 400))
    out = tmp_path / "o"
    proc = start("--input", tmp_path / "a.txt", "--out-dir", out, "--chunk-size", 20000, "--checkpoint-seconds", 0)
    wait_for_progress(out, proc, pause=True)
    proc.send_signal(signal.SIGINT)  # (two different signals stay pending together while stopped)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "stopped at once" in err and "run the same command to continue" in err


# 12. offline: the real cache folder; the test vocabulary builder without npm
def test_offline_message_names_the_real_cache_folder(tmp_path):
    (tmp_path / "in.txt").write_text("hello")
    env = {k: v for k, v in os.environ.items() if k not in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR")}
    env.update(TMPDIR=str(tmp_path / "t"), HTTPS_PROXY="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    (tmp_path / "t").mkdir()
    r = subprocess.run([sys.executable, SCRIPT, "--input", tmp_path / "in.txt", "--out-dir", tmp_path / "o",
                        "--encoding", "cl100k_base"],   # (gpt2 ships with the script)
                       capture_output=True, text=True, env=env, timeout=120)
    assert_user_error(r, str(tmp_path / "t" / "data-gym-cache"))
    assert "<tmp>" not in r.stderr


def test_the_vocabulary_builder_says_when_npm_is_missing(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(sys.executable, bin_dir / "python3")
    vocab = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vocab.py")
    r = subprocess.run([sys.executable, vocab, tmp_path / "cache"], capture_output=True, text=True,
                       env=dict(os.environ, PATH=str(bin_dir)), timeout=120)
    assert_user_error(r, "npm is not installed")


# 13. words
def test_plain_words_for_one_and_for_the_default_input(tmp_path):
    (tmp_path / "one.txt").write_text("A single document.")
    r = run("--input", tmp_path / "one.txt", "--out-dir", tmp_path / "o", "--val-fraction", 0)
    assert r.returncode == 0 and "(1 document," in r.stdout, r.stdout
    assert "1 documents" not in r.stdout + r.stderr
    copy = tmp_path / "nanogpt" / "data" / "fineweb"   # (the folder, as the README copies it)
    shutil.copytree(os.path.dirname(SCRIPT), copy, ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run([sys.executable, copy / "prepare.py"], capture_output=True, text=True)
    assert_user_error(r, "--input", "train_fineweb.txt")


def test_a_merge_says_merging_and_a_shard_says_what_comes_next(tmp_path):
    files = shard_files(tmp_path)
    args = ["--input", *files, "--out-dir", tmp_path / "o", "--val-fraction", 0.01]
    r = run(*args, "--shard", "0/1")
    assert r.returncode == 0 and "once more with --merge (and without --shard" in r.stdout, r.stdout
    r = run(*args, "--merge")   # what it says to do next
    assert r.returncode == 0 and re.search(r"^merging: \d+%", r.stderr, re.M) and "tokenizing" not in r.stderr, r.stderr
    docs = txt_documents("".join(f.read_text() for f in files))
    assert documents_in(tmp_path / "o") == len(docs)
    assert sorted(read_bin(tmp_path / "o" / "train.bin") + read_bin(tmp_path / "o" / "val.bin")) == \
        sorted(flat(reference_docs(docs)))
