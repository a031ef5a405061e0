"""The shard formats, read the way each trainer reads them (readers written here from the
trainers' source): llm.c / modded-nanogpt .bin shards and build-nanogpt .npy shards."""
import glob
import io
import json
import math
import os
import random
import signal
import tempfile
import zlib

import numpy as np
import pytest
import tiktoken
from hypothesis import given, strategies as st

import corpus
from helpers import EOT, GPT2, assert_user_error, checkpoint, killed_at_random, run, txt_layout, write_parquet
from strategies import DOCS, SETTINGS
from prep.cli import main
from prep.config import UserError
from prep.formats import llmc_header, npy_header



def load_llmc(path, magic=20240520, version=1, dtype=np.uint16):
    """llm.c's dataloader.h / train_gpt2.py and modded-nanogpt's _load_data_shard: a header of
    256 int32 (magic, version, token count), then exactly that many tokens."""
    header = np.fromfile(path, dtype="<i4", count=256)
    assert header[0] == magic, "Bad magic in the data file"
    assert header[1] == version, "Bad version in data file"
    ntok = int(header[2])
    assert ntok > 0
    assert os.path.getsize(path) == 256 * 4 + ntok * np.dtype(dtype).itemsize, "file size is not as expected"
    with open(path, "rb") as f:
        f.seek(256 * 4)
        tokens = np.frombuffer(f.read(), dtype=dtype)
    assert len(tokens) == ntok
    return tokens.tolist()


def llmc_split(out, split, prefix="fineweb", **kwargs):
    """modded-nanogpt's glob of a split's shards, sorted, each loaded."""
    return [load_llmc(p, **kwargs) for p in sorted(glob.glob(os.path.join(out, f"{prefix}_{split}_*.bin")))]


def npy_split(out, split):
    """build-nanogpt's DataLoaderLite: the folder's names containing the split, sorted, np.load."""
    shards = sorted(s for s in os.listdir(out) if split in s)
    assert shards, f"no shards found for split {split}"
    return [np.load(os.path.join(out, s)).astype(np.int32).tolist() for s in shards]


READERS = {"llmc": llmc_split, "npy": npy_split}


def reference_split(docs, rule, enc=GPT2):
    """[EOT] + encode_ordinary(doc) for each document of each split, by the README's rule:
    ("tokens", N): the first whole documents until val holds N tokens; ("fraction", F):
    document 1 and then every 1/F-th."""
    val, train, have = [], [], 0
    for i, d in enumerate(docs):
        tokens = [enc.eot_token] + enc.encode_ordinary(d)
        if rule[0] == "tokens":
            to_val = have < rule[1] and (not train)
        else:
            to_val = i >= 1 and math.ceil(i * rule[1]) > math.ceil((i - 1) * rule[1])
        (val if to_val else train).append(tokens)
        have += len(tokens) * to_val
    return train, val


def check_shards(shards, docs, cap):
    """Concatenated, the shards are the split's documents; each shard ends at the last whole
    document that fits in cap (a document longer than cap alone is split)."""
    assert [t for s in shards for t in s] == [t for d in docs for t in d]
    for shard, after in zip(shards, shards[1:]):
        assert len(shard) <= cap
        if after[0] != EOT:  # a shard starts inside a document only if it is longer than a shard
            assert EOT not in shard[1:], "a document was split though it would have fitted in a shard"
        elif shard[0] == EOT:  # whole documents on both sides of the boundary
            next_doc = split_docs_before(after)[0]
            assert len(shard) + len(next_doc) > cap, "the next document would have fitted"
    assert not shards or len(shards[-1]) <= cap


def split_docs_before(tokens):
    """Token list cut before each end-of-text token (EOT-before layout)."""
    starts = [i for i, t in enumerate(tokens) if t == EOT] + [len(tokens)]
    return [tokens[a:b] for a, b in zip(starts, starts[1:])]


@SETTINGS
@given(docs=DOCS, fmt=st.sampled_from(["llmc", "npy"]), cap=st.integers(1, 120),
       rule=st.one_of(st.tuples(st.just("tokens"), st.integers(1, 60)),
                      st.tuples(st.just("fraction"), st.sampled_from([0.1, 0.3, 0.5]))),
       chunk=st.integers(1, 80), source=st.sampled_from(["txt", "parquet"]))
@pytest.mark.slow
def test_shards_read_as_each_trainer_reads_them_equal_the_one_shot_encoding(docs, fmt, cap, rule, chunk, source):
    train_ref, val_ref = reference_split(docs, rule)
    with tempfile.TemporaryDirectory() as d:
        if source == "txt":
            with open(f"{d}/in.txt", "w", encoding="utf-8", newline="") as f:
                f.write(txt_layout(docs))
        else:
            write_parquet(f"{d}/in.parquet", docs, row_group_size=3)
        option = ["--val-tokens", rule[1]] if rule[0] == "tokens" else ["--val-fraction", rule[1]]
        rc = main(list(map(str, ["--input", f"{d}/in.{source}", "--out-dir", f"{d}/o", "--format", fmt,
                                        "--shard-tokens", cap, "--chunk-size", chunk, *option])))
        if rule[0] == "tokens" and not train_ref:
            assert rc == 1  # all of it would go to val
            return
        assert rc == 0
        train, val = READERS[fmt](f"{d}/o", "train"), (READERS[fmt](f"{d}/o", "val") if val_ref else [])
        names = sorted(n for n in os.listdir(f"{d}/o") if n.endswith((".bin", ".npy")))
    check_shards(train, train_ref, cap)
    if rule[0] == "tokens":
        assert len(val) == 1  # with --val-tokens, val is one shard
    check_shards(val, val_ref, cap if rule[0] == "fraction" else math.inf)
    prefix = "fineweb" if fmt == "llmc" else "edufineweb"
    ext = ".bin" if fmt == "llmc" else ".npy"
    assert names == sorted([f"{prefix}_train_{i:06d}{ext}" for i in range(1, len(train) + 1)] +
                           [f"{prefix}_val_{i:06d}{ext}" for i in range(len(val))])


def shard_bytes(out):
    return {n: (out / n).read_bytes() for n in sorted(os.listdir(out)) if n.endswith((".bin", ".npy"))}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["llmc", "npy"])
def test_sigkill_at_random_moments_then_resume_gives_identical_shards(inputs, fmt, tmp_path):
    args = ["--input", *inputs, "--format", fmt, "--val-tokens", 30_000, "--shard-tokens", 60_000,
            "--chunk-size", 20_000, "--checkpoint-seconds", 0]
    r = run(*args, "--out-dir", tmp_path / "whole")
    assert r.returncode == 0, r.stderr
    out, kills = tmp_path / "out", 0
    started = lambda: (out / "prepare.checkpoint.json").exists()
    for _ in killed_at_random([*args, "--out-dir", out], started, random.Random(len(fmt)), times=6, pause=0.5):
        kills += 1
        whole = shard_bytes(tmp_path / "whole")
        listed = [n for n in os.listdir(out) if n.endswith((".bin", ".npy")) or "train" in n or "val" in n]
        assert all(whole.get(n) == (out / n).read_bytes() for n in listed), \
            "a name a trainer lists holds something unfinished"
    assert kills >= 2, "the run finished before it could be killed twice"
    r = run(*args, "--out-dir", out)
    assert r.returncode == 0, r.stderr
    assert shard_bytes(out) == shard_bytes(tmp_path / "whole")
    assert len(shard_bytes(out)) > 10
    assert recorded_crcs(out) == file_crcs(out)


def test_verify_checks_each_shard(inputs, tmp_path):
    out = tmp_path / "o"
    assert run("--input", *inputs, "--out-dir", out, "--format", "llmc", "--val-tokens", 30_000,
               "--shard-tokens", 300_000).returncode == 0
    r = run("--verify", "--out-dir", out)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("ok:") == len(shard_bytes(out)) and "val document:" in r.stdout and "train document:" in r.stdout
    name = "fineweb_train_000002.bin"
    good = (out / name).read_bytes()
    (out / name).write_bytes(good[:8] + b"\x00" + good[9:])
    assert_user_error(run("--verify", "--out-dir", out), name, "header")
    (out / name).write_bytes(good + b"\x00\x00")
    assert_user_error(run("--verify", "--out-dir", out), name, "bytes")
    data = np.frombuffer(good[1024:], np.uint16).copy()
    data[np.flatnonzero(data == EOT)[2]] = 11
    (out / name).write_bytes(good[:1024] + data.tobytes())
    assert_user_error(run("--verify", "--out-dir", out), name, "end-of-text")


# --- checksums: each file's CRC-32 in summary.json, recomputed by --verify ------------------------

def file_crcs(out):
    """zlib's CRC-32 of each token file's bytes, read whole (the reference)."""
    return {n: f"{zlib.crc32((out / n).read_bytes()):08x}" for n in os.listdir(out) if n.endswith((".bin", ".npy"))}


def recorded_crcs(out):
    return {f["file"]: f["crc32"] for f in json.loads((out / "summary.json").read_text())["files"]}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Two inputs (two units): 400 KB of txt, 200 KB of parquet."""
    d = tmp_path_factory.mktemp("small")
    corpus.write_txt(d / "a.txt", 400_000, seed=7)
    corpus.write_parquet(d / "b.parquet", 200_000, seed=8, rows_per_group=20)
    return [d / "a.txt", d / "b.parquet"]


SPLIT_OPTIONS = {"bin": ["--val-fraction", 0.05], "llmc": ["--val-tokens", 10_000, "--shard-tokens", 25_000],
                 "npy": ["--val-tokens", 10_000, "--shard-tokens", 25_000]}


@pytest.mark.parametrize("fmt", ["bin", "llmc", "npy"])
def test_the_summary_records_each_files_crc32_as_zlib_computes_it(small, fmt, tmp_path):
    out = tmp_path / "o"
    r = run("--input", *small, "--out-dir", out, "--format", fmt, *SPLIT_OPTIONS[fmt])
    assert r.returncode == 0, r.stderr
    assert recorded_crcs(out) == file_crcs(out)
    assert len(file_crcs(out)) >= (2 if fmt == "bin" else 5)  # (some shards, with headers of their counts)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["bin", "llmc"])
def test_crc32s_are_right_after_kills_between_writing_and_each_checkpoint(small, fmt, tmp_path):
    """Each run killed before its 3rd checkpoint (its data written and fsynced past the last
    one, shards closed and not yet recorded), then resumed: the files and their recorded CRC-32s
    are those of an uninterrupted run."""
    args = ["--input", *small, "--format", fmt, *SPLIT_OPTIONS[fmt], "--chunk-size", 20_000,
            "--checkpoint-seconds", 0]
    assert run(*args, "--out-dir", tmp_path / "whole").returncode == 0
    out, kills = tmp_path / "o", 0
    while (r := run(*args, "--out-dir", out, env={"PREPARE_TEST_KILL_BEFORE_CHECKPOINT": "3"})).returncode:
        assert r.returncode == -signal.SIGKILL, r.stderr
        kills += 1
    assert kills >= 4
    assert recorded_crcs(out) == file_crcs(out) == file_crcs(tmp_path / "whole")


@pytest.mark.slow
def test_crc32s_are_right_after_shards_and_a_merge_and_with_max_tokens(small, tmp_path):
    out = tmp_path / "o"
    for i in range(2):
        r = run("--input", *small, "--out-dir", out, "--shard", f"{i}/2", "--format", "llmc")
        assert r.returncode == 0, r.stderr
    options = ["--format", "llmc", *SPLIT_OPTIONS["llmc"], "--max-tokens", 120_000]
    r = run("--input", *small, "--out-dir", out, "--merge", *options)
    assert r.returncode == 0, r.stderr
    assert "stopped at --max-tokens" in r.stdout
    assert run("--input", *small, "--out-dir", tmp_path / "one", *options).returncode == 0
    assert recorded_crcs(out) == file_crcs(out) == file_crcs(tmp_path / "one")


def flip_a_token(path, header, k):
    """Token k of the file, changed to another ordinary token (in range, not an EOT)."""
    data = bytearray(path.read_bytes())
    token = int.from_bytes(data[header + 2 * k:header + 2 * k + 2], "little")
    assert token != EOT
    data[header + 2 * k:header + 2 * k + 2] = (token ^ 1).to_bytes(2, "little")
    path.write_bytes(bytes(data))


def test_verify_names_every_file_whose_tokens_changed(small, tmp_path):
    for fmt, bad in (("bin", ["train.bin"]), ("llmc", ["fineweb_train_000002.bin", "fineweb_train_000004.bin"])):
        out = tmp_path / fmt
        assert run("--input", *small, "--out-dir", out, "--format", fmt, *SPLIT_OPTIONS[fmt]).returncode == 0
        for name in bad:
            flip_a_token(out / name, 1024 if fmt == "llmc" else 0, 500)
        r = run("--verify", "--out-dir", out)
        assert_user_error(r, *bad)
        lines = [line for line in r.stderr.splitlines() if "CRC-32" in line]
        assert [line.split(":")[1].strip() for line in lines] == [str(out / name) for name in bad], r.stderr
        assert r.stdout.count("ok:") == len(file_crcs(out)) - len(bad), r.stdout


@pytest.mark.slow
def test_a_summary_without_checksums_verifies_as_before_and_says_so(small, tmp_path):
    """As the release before the checksums wrote it: no crc32 of each file."""
    out = tmp_path / "o"
    assert run("--input", *small, "--out-dir", out, "--format", "llmc", *SPLIT_OPTIONS["llmc"]).returncode == 0
    summary = json.loads((out / "summary.json").read_text())
    for f in summary["files"]:
        del f["crc32"]
    (out / "summary.json").write_text(json.dumps(summary))
    r = run("--verify", "--out-dir", out)
    assert r.returncode == 0, r.stderr
    assert "records no checksums" in r.stderr and r.stdout.count("ok:") == len(summary["files"])
    flip_a_token(out / "fineweb_train_000002.bin", 1024, 500)  # (a changed token passes, as before)
    assert run("--verify", "--out-dir", out).returncode == 0
    with open(out / "fineweb_train_000003.bin", "ab") as f:
        f.write(b"\0\0")
    assert_user_error(run("--verify", "--out-dir", out), "fineweb_train_000003.bin", "bytes", "records no checksums")


def test_the_default_val_split_needs_an_input_bigger_than_it(tmp_path):
    (tmp_path / "in.txt").write_text(txt_layout(["A small document."] * 100), encoding="utf-8")
    r = run("--input", tmp_path / "in.txt", "--out-dir", tmp_path / "o", "--format", "llmc")
    assert_user_error(r, "100,000,000", "--val-tokens", "--format llmc")
    assert not (tmp_path / "o").exists() or not os.listdir(tmp_path / "o") or \
        os.listdir(tmp_path / "o") == [".prepare.lock"]


def test_a_large_vocabulary_gets_llm_c_uint32_header(tmp_path):
    docs = ["Les élèves étudient l'informatique.", "日本語のテキスト。", "Emoji 🙂👍🏽 words."] * 30
    (tmp_path / "in.txt").write_text(txt_layout(docs), encoding="utf-8")
    r = run("--input", tmp_path / "in.txt", "--out-dir", tmp_path / "o", "--format", "llmc",
            "--encoding", "cl100k_base", "--val-tokens", 50)
    assert r.returncode == 0, r.stderr
    assert "20240801" in r.stderr and "uint32" in r.stderr
    enc = tiktoken.get_encoding("cl100k_base")
    train = llmc_split(tmp_path / "o", "train", magic=20240801, version=7, dtype=np.uint32)
    val = llmc_split(tmp_path / "o", "val", magic=20240801, version=7, dtype=np.uint32)
    ref_train, ref_val = reference_split(docs, ("tokens", 50), enc)
    assert [t for s in val for t in s] == [t for d in ref_val for t in d]
    assert [t for s in train for t in s] == [t for d in ref_train for t in d]
    assert max(t for s in train for t in s) > 65535
    assert run("--verify", "--out-dir", tmp_path / "o").returncode == 0


# --- sizes past 2^31 tokens (FineWeb 10BT and up) ------------------------------------------------

@pytest.mark.slow
def test_verify_checks_a_bin_of_more_than_2_31_tokens(tmp_path):
    """A sparse train.bin of 2^31 + 5 uint16 tokens (token 0, then one document's end), as a run
    writes it for --format bin: --verify reads it in blocks and passes; one token short, it names
    the size. (4 GiB of zeros are read, not stored.)"""
    n = (1 << 31) + 5
    with open(tmp_path / "train.bin", "wb") as f:
        f.truncate(2 * n - 2)
        f.seek(2 * n - 2)
        f.write(np.array([EOT], np.uint16).tobytes())
    np.array([1, 2, EOT], np.uint16).tofile(tmp_path / "val.bin")
    summary = dict(encoding="gpt2", dtype="uint16", format="bin", train=dict(tokens=n, documents=1),
                   val=dict(tokens=3, documents=1),
                   files=[dict(file="train.bin", split="train", tokens=n), dict(file="val.bin", split="val", tokens=3)])
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    r = run("--verify", "--out-dir", tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"{n:,} uint16 tokens" in r.stdout, r.stdout
    summary["files"][0]["tokens"] = summary["train"]["tokens"] = n + 1
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert_user_error(run("--verify", "--out-dir", tmp_path), "train.bin", "bytes")


@pytest.mark.unit
def test_headers_past_2_31_tokens():
    """npy holds any count (the header stays 128 bytes and numpy reads the shape); llm.c's int32
    count holds at most 2^31 - 1, and more is refused in a sentence, before any work."""
    n = (1 << 33) + 7
    header = npy_header(n, np.uint16)
    assert len(header) == 128
    from numpy.lib import format as npy_format
    f = io.BytesIO(header)
    assert npy_format.read_magic(f) == (1, 0) and npy_format.read_array_header_1_0(f)[0] == (n,)
    most = (1 << 31) - 1
    assert np.frombuffer(llmc_header(most, np.uint16), "<i4")[2] == most
    with pytest.raises(UserError, match="llm.c"):
        llmc_header(most + 1, np.uint16)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["bin", "llmc"])
def test_a_checkpoint_of_before_the_checksums_resumes_to_the_same_bytes_and_right_crc32s(small, fmt, tmp_path):
    """The previous release's checkpoint (no CRC-32 in its files' state, none in its finished
    shards) resumes: the same bytes as an uninterrupted run, and the CRC-32s of the files."""
    args = ["--input", *small, "--format", fmt, *SPLIT_OPTIONS[fmt], "--chunk-size", 20_000,
            "--checkpoint-seconds", 0]
    assert run(*args, "--out-dir", tmp_path / "whole").returncode == 0
    out = tmp_path / "o"
    r = run(*args, "--out-dir", out, env={"PREPARE_TEST_KILL_BEFORE_CHECKPOINT": "6"})
    assert r.returncode == -signal.SIGKILL, r.stderr
    cp = checkpoint(out)
    files = cp["files"]
    files.pop("crc"), files.pop("doc_crc", None)   # (the previous release's shape)
    if fmt == "llmc":
        assert any(files["done"]), "no finished shard to test"
        files["done"] = [[entry[:3] for entry in split] for split in files["done"]]
    (out / "prepare.checkpoint.json").write_text(json.dumps(cp))
    r = run(*args, "--out-dir", out)
    assert r.returncode == 0, r.stderr
    assert recorded_crcs(out) == file_crcs(out) == file_crcs(tmp_path / "whole")
@pytest.mark.parametrize("fmt,encoding,modded", [("llmc", "gpt2", True), ("llmc", "cl100k_base", False),
                                                 ("npy", "gpt2", False)])
def test_modded_nanogpt_is_named_only_where_it_reads_the_files(fmt, encoding, modded, tmp_path):
    """modded-nanogpt's loader reads llm.c's GPT-2 header and uint16 tokens only: its warnings
    (and the hint of a refused --val-tokens) are for --format llmc with a vocabulary of uint16."""
    (tmp_path / "in.txt").write_text(txt_layout(["A small document of words."] * 300), encoding="utf-8")
    base = ["--input", tmp_path / "in.txt", "--out-dir", tmp_path / "o", "--format", fmt, "--encoding", encoding]
    refused = run(*base)
    assert_user_error(refused, "--val-tokens")
    r = run(*base, "--val-tokens", 50)
    assert r.returncode == 0, r.stderr
    for said in (refused.stderr, r.stderr):
        assert ("modded-nanogpt's evaluation" in said) == modded, said
    assert ("modded-nanogpt's loader needs" in r.stderr) == modded, r.stderr
