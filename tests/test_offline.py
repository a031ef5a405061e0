"""A fresh machine without internet: the GPT-2 vocabulary and a sample ship with the product, and
the README's first commands run on them."""
import json
import os
import re
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from helpers import GPT2, ROOT, SCRIPT, assert_user_error, read_bin, reference_docs, split_docs

# no vocabulary cache and no way out: a download attempt fails at once (an unreachable proxy)
OFFLINE = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}


def offline_env(tmp_path):
    empty = tmp_path / "empty-cache"
    empty.mkdir(exist_ok=True)
    return dict(os.environ, TIKTOKEN_CACHE_DIR=str(empty), **OFFLINE)


def first_commands():
    """The python commands of the README's first command block."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        block = re.search(r"```bash\n(.*?)```", f.read(), re.S).group(1)
    return [line.split() for line in block.splitlines() if line.startswith("python ")]


def copy_product(tmp_path):
    """The product's folder, as a user copies it into a nanoGPT checkout."""
    dest = tmp_path / "checkout"
    shutil.copytree(os.path.join(ROOT, "data", "fineweb"), dest / "data" / "fineweb",
                    ignore=shutil.ignore_patterns("__pycache__", "*.bin", "summary.json"))
    return dest


@pytest.mark.slow
def test_the_readme_first_commands_run_offline_on_the_sample(tmp_path):
    checkout = copy_product(tmp_path)
    commands = first_commands()
    assert commands, "the README's first block has no python command"
    for argv in commands:
        r = subprocess.run([sys.executable, *argv[1:]], cwd=checkout, env=offline_env(tmp_path),
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
    out = checkout / argv[argv.index("--out-dir") + 1]
    texts = [t for t in pq.read_table(checkout / "data" / "fineweb" / "sample" / "fineweb_sample.parquet",
                                      columns=["text"])["text"].to_pylist() if t]
    assert len(texts) >= 1000
    got = split_docs(read_bin(out / "train.bin")) + split_docs(read_bin(out / "val.bin"))
    want = reference_docs(texts)   # (the reference vocabulary: tiktoken's own gpt2, from the tests' cache)
    assert sorted(map(tuple, got)) == sorted(map(tuple, want))


def test_gpt2_needs_no_download(tmp_path):
    docs = ["Offline, it's still GPT-2: naïve café 中文 🙂", "  second\n\ndocument  "]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    for encoding in ("gpt2", "r50k_base"):
        out = tmp_path / encoding
        r = subprocess.run([sys.executable, os.path.join(ROOT, "data", "fineweb", "prepare.py"),
                            "--input", tmp_path / "a.jsonl", "--out-dir", out, "--encoding", encoding,
                            "--val-fraction", "0"], env=offline_env(tmp_path), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert read_bin(out / "train.bin") == [t for d in reference_docs(docs, GPT2) for t in d]


def test_a_damaged_or_missing_vocabulary_file_is_one_sentence(tmp_path):
    checkout = copy_product(tmp_path)
    (tmp_path / "a.txt").write_text("hello world", encoding="utf-8")
    script = checkout / "data" / "fineweb" / "prepare.py"
    vocab = checkout / "data" / "fineweb" / "gpt2.tiktoken"
    data = vocab.read_bytes()
    vocab.write_bytes(data[:1000] + b"x" + data[1001:])
    args = [sys.executable, script, "--input", tmp_path / "a.txt", "--out-dir", tmp_path / "out"]
    r = subprocess.run(args, env=offline_env(tmp_path), capture_output=True, text=True)
    assert_user_error(r, "gpt2.tiktoken", "damaged")
    vocab.unlink()   # prepare.py copied alone
    r = subprocess.run(args, env=offline_env(tmp_path), capture_output=True, text=True)
    assert_user_error(r, "gpt2.tiktoken", "copy the whole folder")


def test_offline_message_names_the_real_cache_folder(tmp_path):
    """Offline, the message names the real vocabulary cache folder, not a placeholder."""
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
    """The tests' vocabulary builder (tests/vocab.py) says so when npm is missing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(sys.executable, bin_dir / "python3")
    vocab = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vocab.py")
    r = subprocess.run([sys.executable, vocab, tmp_path / "cache"], capture_output=True, text=True,
                       env=dict(os.environ, PATH=str(bin_dir)), timeout=120)
    assert_user_error(r, "npm is not installed")
