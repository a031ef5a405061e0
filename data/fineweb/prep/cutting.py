"""Documents: where text may be cut."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import NamedTuple, Optional

from .config import MARKER, MAX_SEARCH, SEGMENT_CHARS


# A cut between a letter or digit and whitespace is a place where every tiktoken pattern
# (gpt2/r50k, p50k, cl100k, o200k) ends one pre-token and starts the next, and no pattern looks
# behind: the text on each side encodes to the same tokens alone as it does in the whole.
SAFE_CUT = re.compile(r"[^\W_](?=\s)")
WHITESPACE = re.compile(r"\s*")
SURROGATE = re.compile("[\ud800-\udfff]")   # invalid UTF-8 bytes, as decoded by surrogateescape


def find_cut(s, target, safe=True):
    """The first safe cut at or after index target (>= 1) of s: (index, forced=False). If none
    lies within MAX_SEARCH characters (or safe is False: the tokenizer's cuts are not proven
    safe), a forced cut at target + MAX_SEARCH: (index, True). None when s ends first. The
    answer depends only on s[target-1 : target+MAX_SEARCH]."""
    m = SAFE_CUT.search(s, target - 1, target + MAX_SEARCH) if safe else None
    if m:
        return m.end(), False
    if len(s) >= target + MAX_SEARCH:
        return target + MAX_SEARCH, True
    return None


def boundary_end(buf, k, eof):
    """Where the document boundary starting with the marker at buf[k] ends, and whether it is
    settled: (end, settled). A boundary is a run of markers with the whitespace between and
    after them (and the whitespace before: the caller strips it). It is settled when more
    text could not extend it."""
    j = k + len(MARKER)
    while True:
        j = WHITESPACE.match(buf, j).end()
        if not buf.startswith(MARKER, j):
            break
        j += len(MARKER)
    return j, eof or (j < len(buf) and not MARKER.startswith(buf[j:j + len(MARKER)]))


def document_goes_on(s, i):
    """None if the text of a document that goes on in s may yet end at or before s[i]: only
    whitespace and the start of a marker follow, or i is inside that start (a forced cut may
    fall there). A piece must not end there, since the whole document, read at once, is
    stripped and has no cut there; the document's end decides. Else where the whitespace from
    s[i] ends: the document surely goes on past every place from i to there."""
    j = WHITESPACE.match(s, i).end()
    k = s.rfind(MARKER[0], max(0, len(s) - len(MARKER) + 1), i)  # (the marker's only "<")
    if len(s) - j < len(MARKER) and MARKER.startswith(s[j:]) or k >= 0 and MARKER.startswith(s[k:]):
        return None
    return j


def boundary_start(buf, m):
    """Where the boundary holding the marker at buf[m] begins: back over whitespace and markers."""
    i = m
    while True:
        while i > 0 and buf[i - 1].isspace():
            i -= 1
        if i < len(MARKER) or not buf.startswith(MARKER, i - len(MARKER)):
            return i
        i -= len(MARKER)



@dataclass
class Counts:
    """What reading counted, summed by the writer in input order (so first_bad is the first)."""
    empty_rows: int = 0
    forced_cuts: int = 0        # cuts not at a safe place (see find_cut and long_space_cuts)
    bad_bytes: int = 0          # invalid UTF-8, replaced with U+FFFD
    first_bad: Optional[str] = None
    skipped_files: list = field(default_factory=list)   # left out, wholly or in part (--skip-bad-files)
    bad_lines: int = 0          # JSON lines left out (--skip-bad-files)
    first_bad_line: Optional[list] = None   # [path, byte] of the first

    def add(self, other: Counts):
        self.empty_rows += other.empty_rows
        self.forced_cuts += other.forced_cuts
        self.bad_bytes += other.bad_bytes
        self.bad_lines += other.bad_lines
        self.first_bad = self.first_bad or other.first_bad
        self.first_bad_line = self.first_bad_line or other.first_bad_line
        self.skipped_files += [p for p in other.skipped_files if p not in self.skipped_files]


class Segment(NamedTuple):
    """Text for the encoder, and what ends after it."""
    text: str
    ends_document: bool         # an end-of-text token follows
    ends_piece: bool            # a piece of the document (or the document) ends here


@dataclass
class Place:
    """Where the reading of a unit stands: the Cutter's state, which every kind shares, and in a
    subclass of each kind's own (InputKind.place) its position in the unit. Saved in each
    checkpoint (asdict) and carried by each chunk that may end a run."""
    in_doc: bool = False        # the current document has text
    piece_len: int = 0          # its characters since its last piece ended
    progress: int = 0           # bytes of the unit done, for the progress bar


@dataclass
class TextPlace(Place):
    """txt and JSON Lines: a byte of the (decompressed) text."""
    offset: Optional[int] = None  # where the unread text starts
    begun: Optional[bool] = None  # past the start of the unit's first document


@dataclass
class RowPlace(Place):
    """parquet: a row of the unit."""
    row: Optional[int] = None   # rows of the unit done


@dataclass
class PartPlace(Place):
    """--merge: a token of a unit's part (a share's, see run.ToParts)."""
    token: Optional[int] = None  # tokens of the part done


def place_of(saved: dict) -> Place:
    """The Place a checkpoint saved: of the kind whose position it holds (a checkpoint of before
    the kinds had their own holds every kind's fields, the others None). KeyError: none."""
    shared = {f.name for f in fields(Place)}
    for kind in (TextPlace, RowPlace, PartPlace):
        own = {f.name for f in fields(kind)} - shared
        if any(saved.get(k) is not None for k in own):
            return kind(**{k: saved[k] for k in shared | own if k in saved})
    raise KeyError("a position")


class Cutter:
    """Turns a unit's documents into segments for the encoder. A piece ends at the first safe
    cut at or after every piece_chars characters of a document, wherever the chunks fall, so
    pieces never depend on --chunk-size; which split a piece goes to is decided by the writer,
    which sees them in order. Its state is place.in_doc and place.piece_len."""

    def __init__(self, place: Place, chunk: int, piece_chars: int, safe: bool = True):
        self.place, self.chunk, self.piece_chars, self.safe = place, chunk, piece_chars, safe
        self.segments, self.chars, self.counts, self.dirty = [], 0, Counts(), False

    def wanted(self) -> int:
        """Bytes of input to read next: what the chunk still lacks (a chunk twice the chunk size
        would double what is in flight), at least 64 KiB, or the chunk size if smaller."""
        return max(self.chunk - self.chars, min(self.chunk, 1 << 16))

    def emit(self, text, ends_piece=False, forced=False):
        self.counts.forced_cuts += forced
        self.place.in_doc = True
        self.place.piece_len = 0 if ends_piece else self.place.piece_len + len(text)
        self.segments.append(Segment(text, False, ends_piece))
        self.chars += len(text) + SEGMENT_CHARS

    def add(self, s: str, final: bool) -> int:
        """Emits the current document's text s: all of it when final; otherwise what can be
        emitted for sure, cut near the chunk size to bound memory. Returns characters used."""
        i, goes_on = 0, 0  # the document surely goes on past s[:goes_on] (see document_goes_on)
        while True:
            piece_at = i + self.piece_chars - self.place.piece_len
            if not final and piece_at > i + self.chunk:
                cut = find_cut(s, i + self.chunk, self.safe) if len(s) - i > self.chunk else None
                if cut is not None and cut[0] > goes_on:  # (a forced cut may fall where the document
                    goes_on = document_goes_on(s, cut[0])  # may yet end: in a marker's start, say)
                if cut is None or goes_on is None:
                    break
                if cut[0] < piece_at:
                    self.emit(s[i:cut[0]], forced=cut[1])
                    i = cut[0]
                    continue
            cut = find_cut(s, piece_at, self.safe)
            if cut is not None and not final and cut[0] > goes_on:  # (so a long run of whitespace
                goes_on = document_goes_on(s, cut[0])                # holding many cuts is read once)
            if cut is None or goes_on is None:
                break
            self.emit(s[i:cut[0]], ends_piece=True, forced=cut[1])
            i = cut[0]
        if final and i < len(s):
            self.emit(s[i:])
            i = len(s)
        return i

    def end_document(self):
        """Ends the document with one end-of-text token; a document with no text is skipped."""
        if self.place.in_doc:
            self.segments.append(Segment("", True, True))
            self.chars += SEGMENT_CHARS
        self.place.in_doc, self.place.piece_len = False, 0

    def add_documents(self, texts: list):
        """Whole documents: for each, add(text, final=True) then end_document(). In bulk when no
        document is open and none is empty or longer than a piece (then no cut falls inside one)."""
        if self.place.in_doc or not all(texts) or max(map(len, texts), default=0) > self.piece_chars:
            for text in texts:
                self.add(text, final=True)
                self.end_document()
            return
        self.segments += [Segment(text, True, True) for text in texts]
        self.chars += sum(map(len, texts)) + SEGMENT_CHARS * len(texts)

    def take(self) -> tuple:
        """The segments and counts so far; invalid UTF-8 (surrogates) becomes U+FFFD, counted.
        (dirty stays set for the unit: text read with a bad byte may be given out later.)"""
        segments, counts = self.segments, self.counts
        if self.dirty:
            counts.bad_bytes += sum(len(SURROGATE.findall(seg.text)) for seg in segments)
            segments = [seg._replace(text=SURROGATE.sub("\ufffd", seg.text)) for seg in segments]
        self.segments, self.chars, self.counts = [], 0, Counts()
        return segments, counts
