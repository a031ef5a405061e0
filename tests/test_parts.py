"""Each stage on its own, against an independent reference, so that a failure points at the
part that broke: the Cutter (pieces), the split (train/val), each shard writer (closing
shards, resuming from its saved state) and each input kind (units that tile the file, whose
documents are the file's)."""
import gzip
import io
import json
import os
import zlib
from dataclasses import asdict
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import example, given, strategies as st

import prep.cutting
import prep.kinds
from helpers import txt_documents, txt_layout, write_parquet
from strategies import DOCS, SETTINGS, TEXTS
from prep.cli import make_config
from prep.config import TRAIN, UserError, ValRule
from prep.cutting import Counts, Cutter, PartPlace, Place, RowPlace, SAFE_CUT, TextPlace, WHITESPACE, place_of
from prep.formats import FORMATS
from prep.inputs import open_inputs, plan_units
from prep.kinds import add_text
from prep.readers import Chunk, read_unit
from prep.splits import SplitState, split_chunk
from prep.run import Progress, take_all
from prep.schedule import Encoded
from prep.streams import Unit

pytestmark = pytest.mark.unit


# --- the Cutter: pieces at the first safe cut at or after every piece_chars characters -----------

def reference_pieces(doc, piece_chars):
    """Where a document's pieces end, from the whole document at once: the first place at or
    after each piece_chars characters (counted from the last piece end) between a letter or
    digit and whitespace (str.isalnum, str.isspace: the rule, without the script's regex)."""
    ends, last = [], 0
    while True:
        i = last + piece_chars
        while i < len(doc) and not (doc[i - 1].isalnum() and doc[i].isspace()):
            i += 1
        if i >= len(doc):
            return ends + [len(doc)]
        ends.append(i)
        last = i


def cut_documents(docs, piece_chars, chunk, reads):
    """Feeds the Cutter each document as a reader does (text arriving in reads-sized parts, the
    unused rest kept), and returns [(document, piece ends)] rebuilt from its segments."""
    cut = Cutter(Place(), chunk, piece_chars)
    segments = []
    for doc in docs:
        buf = ""
        for k in range(0, len(doc), reads):
            buf += doc[k:k + reads]
            buf = buf[cut.add(buf, final=False):]
            segments += cut.take()[0]
        cut.add(buf, final=True)
        cut.end_document()
        segments += cut.take()[0]
    out, text, ends = [], "", []
    for seg in segments:
        text += seg.text
        if seg.ends_document:
            out.append((text, ends))
            text, ends = "", []
        elif seg.ends_piece:
            ends.append(len(text))
    assert not text
    return out


@SETTINGS
@given(docs=DOCS, piece_chars=st.integers(1, 60), chunk=st.integers(1, 50), reads=st.integers(1, 70))
def test_the_cutter_gives_each_document_whole_with_its_pieces_wherever_reads_fall(docs, piece_chars, chunk, reads):
    got = cut_documents(docs, piece_chars, chunk, reads)
    assert [text for text, _ in got] == docs
    assert [ends + [len(text)] for text, ends in got] == [reference_pieces(d, piece_chars) for d in docs]


def txt_documents_read_in_parts(text, chunk, piece_chars, reads):
    """The documents the Cutter gives for a txt file's text arriving in reads-sized parts, as
    the txt window hands them over (add_text, the unused rest kept)."""
    cut = Cutter(Place(), chunk, piece_chars)
    segments, buf = [], ""
    for k in range(0, len(text), reads):
        buf += text[k:k + reads]
        buf = buf[add_text(cut, buf, False):]
        segments += cut.take()[0]
    add_text(cut, buf, True)
    cut.end_document()
    segments += cut.take()[0]
    docs, doc = [], ""
    for seg in segments:
        doc += seg.text
        if seg.ends_document:
            docs.append(doc)
            doc = ""
    assert not doc
    return docs


@SETTINGS
@given(text=TEXTS, chunk=st.integers(1, 20), piece_chars=st.integers(1, 20), reads=st.integers(1, 40),
       max_search=st.integers(1, 12))
@example(text="中" * 13 + "<|endoftext|>next", chunk=3, piece_chars=5, reads=16, max_search=10)
@example(text="<|endoftext|>", chunk=1, piece_chars=3, reads=1, max_search=1)  # (a chunk-size cut, not a piece end)
def test_forced_cuts_never_change_the_documents_wherever_reads_fall(text, chunk, piece_chars, reads, max_search):
    """With a small MAX_SEARCH, forced cuts fall everywhere, in a marker not yet read whole too
    (the document may end at that marker: the cut must wait); the documents stay the file's."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(prep.cutting, "MAX_SEARCH", max_search)
        assert txt_documents_read_in_parts(text, chunk, piece_chars, reads) == txt_documents(text)


# --- the split: which pieces go to val -------------------------------------------------------------

EOT = 9


def stream_of(doc_pieces):
    """The tokens of documents given as lists of piece lengths (tokens 1-8; the last piece of
    each also holds its EOT, and may hold nothing else), the cuts (piece ends that are not
    document ends), and each token's (piece, document) number."""
    tokens, cuts, owner, piece = [], [], [], 0
    for doc, pieces in enumerate(doc_pieces):
        for k, n in enumerate(pieces):
            last = k == len(pieces) - 1
            for _ in range(n):
                tokens.append(1 + len(tokens) % 8)
            tokens += [EOT] if last else []
            owner += [(piece, doc)] * (n + last)
            cuts += [] if last else [len(tokens)]
            piece += 1
    return tokens, cuts, owner


def reference_split(tokens, owner, kind, amount):
    """(train, val) of the whole stream at once, by the rule as the README states it: with a
    fraction F, piece 1 and then every 1/F-th piece to val; with a token count N, whole
    documents to val while it holds fewer than N tokens."""
    if kind == "fraction":
        to_val = [p >= 1 and np.ceil(p * amount) > np.ceil((p - 1) * amount) for p, _ in owner]
    else:
        size = {}
        for _, doc in owner:
            size[doc] = size.get(doc, 0) + 1
        val_docs, have = set(), 0
        for doc in sorted(size):
            if have < amount:
                val_docs.add(doc)
                have += size[doc]
        to_val = [doc in val_docs for _, doc in owner]
    return [t for t, v in zip(tokens, to_val) if not v], [t for t, v in zip(tokens, to_val) if v]


@SETTINGS
@given(doc_pieces=st.lists(st.tuples(st.lists(st.integers(1, 6), max_size=3), st.integers(0, 6)).map(
           lambda d: d[0] + [d[1]]), min_size=1, max_size=30),
       rule=st.one_of(st.tuples(st.just("fraction"), st.sampled_from([0.0, 0.1, 0.25, 0.5])),
                      st.tuples(st.just("tokens"), st.integers(0, 60))),
       chunk_ends=st.lists(st.integers(0, 200), max_size=8))
@example(doc_pieces=[[1], [2]], rule=("tokens", 0), chunk_ends=[])  # (--val-tokens 0: val holds nothing)
@example(doc_pieces=[[1], [2], [3]], rule=("tokens", 2), chunk_ends=[])  # (val reaches N at a document's end)
def test_the_split_of_a_stream_does_not_depend_on_where_chunks_end(doc_pieces, rule, chunk_ends):
    tokens, cuts, owner = stream_of(doc_pieces)
    array = np.array(tokens, np.uint16)
    split, train, val = SplitState(), [], []
    bounds = sorted({min(c, len(tokens)) for c in chunk_ends} | {0, len(tokens)})
    for lo, hi in zip(bounds, bounds[1:]):
        chunk_cuts = [c - lo for c in cuts if lo < c <= hi]
        t, v, reached = split_chunk(array[lo:hi], chunk_cuts, split, ValRule(*rule), EOT, None)
        train += t.tolist()
        val += v.tolist()
        assert not reached
    assert (train, val) == reference_split(tokens, owner, *rule)
    assert split.tokens == [len(train), len(val)] and split.docs == [train.count(EOT), val.count(EOT)]


def test_max_tokens_ends_at_the_first_document_end_at_or_after_it():
    tokens = np.array([1, 1, EOT, 2, 2, 2, EOT, 3, EOT], np.uint16)
    for limit, kept in [(1, 3), (3, 3), (4, 7), (7, 7), (8, 9)]:
        t, v, reached = split_chunk(tokens, [], SplitState(), ValRule("fraction", 0), EOT, limit)
        assert len(t) + len(v) == kept and reached


# --- the shard writers: where shards close, and resuming from their saved state -------------------

def reference_shards(docs, cap):
    """Shards of the stream 'EOT before each document' (llm.c's convention): each ends at the
    last document start after its first token and at most cap tokens in, else (inside one
    long document) at cap tokens."""
    stream, starts = [], []
    for doc in docs:
        starts.append(len(stream))
        stream += [EOT] + doc
    shards, s = [], 0
    while len(stream) - s > cap:
        inside = [p for p in starts if s < p <= s + cap]
        end = max(inside) if inside else s + cap
        shards.append(stream[s:end])
        s = end
    return shards + ([stream[s:]] if s < len(stream) else [])


def read_shard(path, fmt):
    data = open(path, "rb").read()
    if fmt == "llmc":
        header = np.frombuffer(data[:1024], "<i4")
        assert list(header[:2]) == [20240520, 1]
        tokens = np.frombuffer(data[1024:], np.uint16)
        assert header[2] == len(tokens)
        return tokens.tolist()
    return np.load(io.BytesIO(data)).tolist()


@SETTINGS
@given(docs=st.lists(st.lists(st.integers(0, 8), max_size=25), min_size=1, max_size=30),
       cap=st.integers(2, 40), writes=st.lists(st.integers(1, 50), max_size=10),
       resume_at=st.sets(st.integers(0, 10), max_size=3), fmt=st.sampled_from(["llmc", "npy"]))
def test_each_shard_writer_closes_shards_where_the_reference_does_and_resumes_from_its_state(
        docs, cap, writes, resume_at, fmt, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("shards"))
    config = make_config(["--out-dir", out, "--format", fmt, "--shard-tokens", str(cap),
                                  "--val-fraction", "0"])
    form = FORMATS[fmt]
    new_writer = lambda: form.writer(form, out, np.uint16, config, EOT)
    stream = np.array([t for d in docs for t in d + [EOT]], np.uint16)
    w = new_writer()
    w.open(None)
    lo = 0
    for k, n in enumerate(writes + [len(stream)]):
        w.write(TRAIN, stream[lo:lo + n])
        lo += n
        if k in resume_at:  # a checkpoint, then a new writer from its state
            saved = w.state()
            w.settle()
            w.close()
            w = new_writer()
            w.open(saved)
    files = w.finish()
    names = sorted(f for f in os.listdir(out) if "_train_" in f)
    assert names == sorted(f["file"] for f in files if f["split"] == "train")
    assert [read_shard(os.path.join(out, n), fmt) for n in names] == reference_shards(docs, cap)
    assert not [f for f in os.listdir(out) if f.startswith(".")]
    assert [f["crc32"] for f in files if f["split"] == "train"] == \
        [f"{zlib.crc32(open(os.path.join(out, n), 'rb').read()):08x}" for n in names]


# --- input kinds: units that tile each file, whose documents are the file's ------------------------

def documents_of(config):
    """Every document the units of the inputs give, read unit by unit in this process."""
    inputs = open_inputs(config)
    units = plan_units(inputs, config)
    docs, text = [], ""
    for unit in units:
        for chunk in read_unit(inputs, unit, None, config):
            for seg in chunk.segments:
                text += seg.text
                if seg.ends_document:
                    docs.append(text)
                    text = ""
    assert not text
    return inputs, units, docs


def check_tiling(inp, units):
    """Units cover the file (bytes or row groups) in order, without gaps or overlaps, and their
    weights add up to its size."""
    end = inp.size if inp.kind != "parquet" else len(inp.groups)
    assert units[0].lo == 0 and units[-1].hi == end
    assert all(a.hi == b.lo for a, b in zip(units, units[1:]))
    assert sum(u.weight for u in units) == inp.size


@SETTINGS
@given(text=TEXTS, docs=DOCS, unit=st.integers(1, 300), kind=st.sampled_from(["txt", "jsonl", "parquet"]))
def test_each_input_kinds_units_tile_the_file_and_give_its_documents(text, docs, unit, kind, tmp_path_factory):
    d = tmp_path_factory.mktemp(kind)
    path = str(d / f"in.{kind}")
    if kind == "txt":
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text + txt_layout(docs))
        want = txt_documents(text + txt_layout(docs))
    elif kind == "jsonl":
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(dict(text=t)) + "\n" for t in docs)
        want = docs
    else:
        write_parquet(path, docs, row_group_size=3)
        want = docs
    config = make_config(["--input", path, "--out-dir", str(d / "o"), "--chunk-size", "7"],
                                 unit_bytes=unit)
    inputs, units, got = documents_of(config)
    check_tiling(inputs[0], units)
    assert got == want


@pytest.mark.parametrize("name, units", [("a.txt.gz", 1), ("a.txt", 4)])
def test_a_compressed_file_is_one_unit(name, units, tmp_path):
    data = txt_layout([f"document {i} " * 20 for i in range(40)]).encode()
    (gzip.open if name.endswith(".gz") else open)(tmp_path / name, "wb").write(data)
    config = make_config(["--input", str(tmp_path / name), "--out-dir", str(tmp_path / "o")],
                                 unit_bytes=len(data) // 4 + 1)
    inputs = open_inputs(config)
    assert len(plan_units(inputs, config)) == units


# --- the txt reader: work in proportion to the text, whatever --chunk-size -------------------------

NO_CUT_FOR_A_LONG_WAY = {  # text with no safe cut for a long way, as the shapes
    "a whitespace run": "hello world" + " " * 300_000 + " and words" * 20_000,  # (read before the end)
    "CJK, no punctuation": "".join(chr(0x4E00 + i * 7919 % 3000) for i in range(100_000)),
    "Chinese-like prose": "".join(chr(0x4E00 + i * 7919 % 3000) + ("，" if i % 7 == 6 else "")
                                  + ("。\n" if i % 40 == 39 else "") for i in range(100_000)),
}


@pytest.mark.parametrize("max_search", [None, 3000])
@pytest.mark.parametrize("shape", sorted(NO_CUT_FOR_A_LONG_WAY))
@pytest.mark.parametrize("chunk", [100, 1000])
def test_text_with_no_safe_cut_for_a_long_way_is_scanned_a_few_times_at_most(shape, chunk, max_search, tmp_path,
                                                                             monkeypatch):
    """The characters the cut search looks at, those the txt window hands the Cutter and those
    matched as whitespace add up to a few times the text, however small --chunk-size is (before,
    each read scanned again all the text held: the text's square over the chunk size). Each read
    adds a quarter of what is held at least: 1 + 4/5 + (4/5)^2 + ... = 5 times. max_search: a
    smaller MAX_SEARCH (and pieces), so that forced cuts also empty the window, many of them
    in one run of whitespace."""
    body = NO_CUT_FOR_A_LONG_WAY[shape]
    text = body + "\n<|endoftext|>\nsecond document"
    (tmp_path / "in.txt").write_text(text, encoding="utf-8")
    scanned = {"by the cut search": 0, "handed to the Cutter": 0, "matched as whitespace": 0}
    search, add_text, match = SAFE_CUT.search, prep.kinds.add_text, WHITESPACE.match

    def counted_search(s, pos, endpos):
        m = search(s, pos, endpos)
        scanned["by the cut search"] += max(0, (m.end() if m else min(endpos, len(s))) - pos)
        return m

    def counted_match(s, pos):
        m = match(s, pos)
        scanned["matched as whitespace"] += m.end() - pos
        return m

    def counted_add_text(cut, buf, eof):
        scanned["handed to the Cutter"] += len(buf)
        return add_text(cut, buf, eof)

    monkeypatch.setattr(prep.cutting, "SAFE_CUT", SimpleNamespace(search=counted_search))
    monkeypatch.setattr(prep.kinds, "add_text", counted_add_text)
    monkeypatch.setattr(prep.cutting, "WHITESPACE", SimpleNamespace(match=counted_match))
    sizes = {}
    if max_search:
        monkeypatch.setattr(prep.cutting, "MAX_SEARCH", max_search)
        sizes = dict(piece_chars=max_search)
    config = make_config(["--input", str(tmp_path / "in.txt"), "--out-dir", str(tmp_path / "o"),
                                  "--chunk-size", str(chunk)], **sizes)
    _, _, docs = documents_of(config)
    assert docs == [body.strip(), "second document"]  # (txt_documents' regex is slow on long runs of spaces)
    assert max(scanned.values()) <= 10 * len(text), scanned


def test_each_kind_keeps_its_own_position_and_a_checkpoint_of_before_still_loads():
    """A checkpoint holds the Cutter's state and the unit's kind's own position (a txt or JSON
    Lines byte, a parquet row, a part's token); the previous release's held every kind's fields,
    the others None: each loads as the place it was."""
    shared = dict(in_doc=True, piece_len=12, progress=345)
    every = dict(offset=None, begun=None, row=None, token=None)
    for place, own in ((TextPlace(offset=99, begun=True, **shared), dict(offset=99, begun=True)),
                       (RowPlace(row=7, **shared), dict(row=7)), (PartPlace(token=0, **shared), dict(token=0))):
        assert asdict(place) == dict(shared, **own)
        assert place_of(asdict(place)) == place
        assert place_of(dict(shared, **dict(every, **own))) == place
    with pytest.raises(KeyError):
        place_of(dict(shared, **every))


@pytest.mark.parametrize("last_has_place", [False, True])
def test_an_input_error_checkpoints_only_where_a_run_can_resume(last_has_place):
    """take_all: an input error (a reader killed, a damaged file) raised after a chunk with no
    place to resume from (inside a long document, or not the last of a batch) keeps the last
    checkpoint: one written then would record tokens past the place a resumed run starts from,
    and that run would write them twice."""
    class Sink:
        def __init__(self):
            self.checkpoints = 0

        def take(self, _item):
            return False

        def may_stop(self):
            pass

        def failed(self):
            self.checkpoints += 1

        def end(self, _complete):
            pass

        def close(self):
            pass

    def encoded():
        yield Encoded(0, np.zeros(3, np.uint32), [], Chunk([], Counts(), TextPlace(offset=1), False))
        yield Encoded(0, np.zeros(3, np.uint32), [], Chunk([], Counts(), TextPlace(offset=2) if last_has_place
                                                             else None, False))
        raise UserError("the reader process ended")

    sink = Sink()
    with pytest.raises(UserError):
        take_all(encoded(), sink, [Unit(0, 0, 10, 10)], Progress("x", 10, 0), 0)
    assert sink.checkpoints == (1 if last_has_place else 0)
