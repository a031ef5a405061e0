"""The contract, property-tested against one-shot tiktoken encodings of the whole text."""
import os
import sys
import tempfile

import numpy as np
import pytest
import regex
import tiktoken
from hypothesis import given, strategies as st

from strategies import DOCS, NO_CUT_TEXTS, SETTINGS, TEXTS
from helpers import (ENCODERS, EOT, GPT2, flat, read_bin, reference_docs, run, split_docs,
                     txt_documents, txt_layout, write_parquet)
from prep.cli import main
from prep.config import MAX_SEARCH, PIECE_CHARS
from prep.cutting import SAFE_CUT, find_cut




def interleaves(ref, a, b):
    """Whether ref is a and b merged, each kept in order."""
    ok = {(0, 0)}
    for item in ref:
        ok = {(i + 1, j) for i, j in ok if i < len(a) and a[i] == item} | \
             {(i, j + 1) for i, j in ok if j < len(b) and b[j] == item}
    return (len(a), len(b)) in ok


def run_prepare(inputs, out, sizes=None, **options):
    """prepare.main in this process; sizes: Config's sizes to set (piece_chars, ...)."""
    args = ["--input", *inputs, "--out-dir", out]
    for k, v in options.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    assert main(args, **(sizes or {})) == 0


def outputs(out):
    return read_bin(os.path.join(out, "train.bin")), read_bin(os.path.join(out, "val.bin"))


def assert_txt_equals_one_shot_encoding(text, **options):
    docs = txt_documents(text)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "in.txt")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        if not docs:
            assert main(["--input", path, "--out-dir", d + "/o"]) == 1
            return
        run_prepare([path], d + "/o", val_fraction=0, **options)
        train, val = outputs(d + "/o")
    assert train == flat(reference_docs(docs))
    assert val == []


@pytest.mark.parametrize("encoder", ENCODERS)
@SETTINGS
@given(text=TEXTS, chunk=st.integers(1, 64), workers=st.integers(1, 3))
def test_txt_equals_one_shot_encoding(text, chunk, workers, encoder):
    """Any text, any chunk size: train.bin is the one-shot encoding of the documents."""
    assert_txt_equals_one_shot_encoding(text, chunk_size=chunk, workers=workers, encoder=encoder)


@pytest.mark.parametrize("encoder", ENCODERS)
@SETTINGS
@given(text=NO_CUT_TEXTS, chunk=st.integers(1, 64))
def test_txt_with_no_safe_cut_for_a_long_way_equals_one_shot_encoding(text, chunk, encoder):
    """Runs of CJK without punctuation, of whitespace or of punctuation, longer than the chunk:
    the text held unused grows over many reads, and train.bin is still the one-shot encoding."""
    assert_txt_equals_one_shot_encoding(text, chunk_size=chunk, encoder=encoder)


@SETTINGS
@given(text=st.lists(st.sampled_from(["word", " ", "\n", "12", "é", "中", "!"]), max_size=80).map("".join)
       .filter(lambda t: t), chunk=st.integers(1, 50))
def test_file_without_markers_is_one_stream(text, chunk):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "in.txt")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        run_prepare([path], d + "/o", chunk_size=chunk, val_fraction=0)
        train, _ = outputs(d + "/o")
    assert train == GPT2.encode_ordinary(text) + [EOT]


@pytest.mark.parametrize("encoder", ENCODERS)
@SETTINGS
@given(rows=st.lists(st.one_of(st.none(), TEXTS), min_size=1, max_size=30),
       chunk=st.integers(1, 200), group=st.integers(1, 7), name=st.sampled_from(["gpt2", "cl100k_base"]))
@pytest.mark.slow
def test_parquet_rows_equal_one_shot_encoding(rows, chunk, group, name, encoder):
    """Each non-empty row is encode_ordinary(text) + [EOT]; markers (and other special tokens'
    text) inside rows are text."""
    docs = [r for r in rows if r]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "in.parquet")
        write_parquet(path, rows, row_group_size=group)
        if not docs:
            assert main(["--input", path, "--out-dir", d + "/o"]) == 1
            return
        run_prepare([path], d + "/o", chunk_size=chunk, val_fraction=0, encoding=name, encoder=encoder)
        enc = tiktoken.get_encoding(name)
        dtype = np.uint16 if enc.n_vocab <= 1 << 16 else np.uint32
        train = read_bin(os.path.join(d, "o", "train.bin"), dtype)
    assert train == flat(reference_docs(docs, enc))





@pytest.mark.parametrize("encoder", ENCODERS)
@SETTINGS
@given(docs=DOCS, frac=st.sampled_from([0, 0.0005, 0.1, 0.3, 0.5]),
       chunks=st.tuples(st.integers(1, 80), st.integers(1, 80)), workers=st.integers(1, 3))
@pytest.mark.slow
def test_txt_and_parquet_give_the_same_files_and_split(docs, frac, chunks, workers, encoder):
    """The same documents from txt and parquet, at two chunk sizes: identical train/val; every
    document lands whole in one split, and both splits are used once there are two documents."""
    with tempfile.TemporaryDirectory() as d:
        with open(f"{d}/in.txt", "w", encoding="utf-8", newline="") as f:
            f.write(txt_layout(docs))
        write_parquet(f"{d}/in.parquet", docs, row_group_size=4)
        run_prepare([f"{d}/in.txt"], f"{d}/a", chunk_size=chunks[0], val_fraction=frac, encoder=encoder)
        run_prepare([f"{d}/in.parquet"], f"{d}/b", chunk_size=chunks[1], val_fraction=frac,
                    workers=workers, encoder=encoder)
        a, b = outputs(f"{d}/a"), outputs(f"{d}/b")
    assert a == b
    train, val = split_docs(a[0]), split_docs(a[1])
    ref = reference_docs(docs)
    assert sorted(train + val) == sorted(ref)
    assert interleaves(ref, train, val)  # whole documents, each split in input order
    if frac and len(docs) >= 2:
        assert train and val
    if not frac:
        assert not val
    assert len(val) <= max(1, frac * len(docs) + 1)


@pytest.mark.parametrize("encoder", ENCODERS)
@SETTINGS
@given(text=TEXTS, frac=st.sampled_from([0.2, 0.5]), piece=st.integers(1, 40),
       chunks=st.tuples(st.integers(1, 60), st.integers(1, 60)))
@pytest.mark.slow
def test_long_document_pieces_do_not_depend_on_chunk_size(text, frac, piece, chunks, encoder):
    """Documents longer than PIECE_CHARS go to train/val in pieces cut at safe places: the same
    pieces whatever the chunk size, and no tokens change."""
    sizes = dict(piece_chars=piece)
    docs = txt_documents(text)
    if not docs:
        return
    with tempfile.TemporaryDirectory() as d:
        with open(f"{d}/in.txt", "w", encoding="utf-8", newline="") as f:
            f.write(text)
        run_prepare([f"{d}/in.txt"], f"{d}/a", sizes, chunk_size=chunks[0], val_fraction=frac, encoder=encoder)
        run_prepare([f"{d}/in.txt"], f"{d}/b", sizes, chunk_size=chunks[1], val_fraction=frac, workers=2,
                    encoder=encoder)
        run_prepare([f"{d}/in.txt"], f"{d}/c", sizes, chunk_size=chunks[1], val_fraction=0, encoder=encoder)
        a, b, c = outputs(f"{d}/a"), outputs(f"{d}/b"), outputs(f"{d}/c")
    assert a == b
    assert c[0] == flat(reference_docs(docs))
    assert sorted(a[0] + a[1]) == sorted(c[0])


@pytest.mark.unit
def test_safe_cut_characters_are_letters_digits_and_whitespace_for_tiktoken():
    """The cut rule's classes, checked over all of Unicode against the regex classes the
    tiktoken patterns use: Python's [^\\W_] must lie inside \\p{L}|\\p{N}."""
    letters_digits = regex.compile(r"[\p{L}\p{N}]")
    bad = [hex(c) for c in range(sys.maxunicode + 1)
           if SAFE_CUT.match(chr(c) + " ") and not letters_digits.match(chr(c))]
    assert not bad


@pytest.mark.unit
@pytest.mark.parametrize("name", ["gpt2", "cl100k_base"])
def test_text_cut_at_safe_places_encodes_as_a_whole(name):
    """Every whitespace Python knows, after letters and digits of several scripts, in the
    contexts that matter to the patterns (more whitespace, punctuation, contractions, digits)."""
    enc = tiktoken.get_encoding(name)
    spaces = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    lefts = ["a", "Z", "7", "中", "é", "ж", "ǅ", "٣", "x's", "ab12", "I'll"]
    rights = ["", "b", " b", "\n\nb", "  ", "'s", "!!", "\r\n", "12", "\n"]
    for left in lefts:
        for space in spaces:
            for right in rights:
                whole, cut = "q " + left, space + right
                assert find_cut(whole + cut, len(whole)) == (len(whole), False)
                assert enc.encode_ordinary(whole + cut) == enc.encode_ordinary(whole) + enc.encode_ordinary(cut), \
                    (name, whole, cut)


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 11, 13, 17, 1 << 20])
def test_a_piece_mark_in_a_documents_last_word_does_not_depend_on_where_reading_stops(chunk, tmp_path, encoder):
    """The piece mark of a long document (here 12 characters) falls in its last word, and a read
    may stop between that word and the marker: the document is still one piece, as read at once."""
    text = "aaaa bbbb xyz   \n<|endoftext|>cc dd ee ff gg\n<|endoftext|>hh ii jj kk\n"
    (tmp_path / "in.txt").write_text(text, encoding="utf-8")
    run_prepare([str(tmp_path / "in.txt")], str(tmp_path / "o"), dict(piece_chars=12), chunk_size=chunk,
                val_fraction=0.5, encoder=encoder)
    train, val = outputs(str(tmp_path / "o"))
    docs = reference_docs(txt_documents(text))
    # read at once, no document has a safe cut at or after character 12: three pieces, and
    # piece 1 (of 0, 1, 2) goes to val
    assert train == docs[0] + docs[2] and val == docs[1]


@pytest.mark.slow
def test_a_marker_read_in_part_just_past_where_a_forced_cut_would_fall_still_ends_the_document(tmp_path):
    """A document of CJK characters 3 short of where its first forced cut would fall (2 x
    1,048,576 characters), then a marker: at the defaults a read ends inside that marker, past
    that place. The document ends at the marker, one-shot encoded (the release cut there and
    kept the marker as text, joining the two documents)."""
    text = "中" * (PIECE_CHARS + MAX_SEARCH - 3) + "<|endoftext|>" + "second"
    (tmp_path / "in.txt").write_text(text, encoding="utf-8")
    result = run("--input", tmp_path / "in.txt", "--out-dir", tmp_path / "o", "--val-fraction", 0)
    assert result.returncode == 0, result.stderr
    assert read_bin(tmp_path / "o" / "train.bin") == flat(reference_docs(txt_documents(text)))
