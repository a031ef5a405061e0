"""
Turns local pretraining text into the token files GPT trainers read: nanoGPT's train.bin and
val.bin, llm.c / modded-nanogpt .bin shards (--format llmc), build-nanogpt .npy shards (--format npy).

    python data/fineweb/prepare.py --input train_fineweb.txt
    python data/fineweb/prepare.py --input fineweb/sample/10BT --format llmc --out-dir fineweb10B

Streams the input in bounded memory, writes tokens to disk as they are made, and can be
stopped at any moment (Ctrl-C, kill, crash): running the same command again continues and
ends with the same bytes an uninterrupted run writes. Several machines can share a run
(--shard I/N on each, then --merge) and get the same bytes. Runs on Linux, macOS and Windows
with Python 3.9+ and numpy, tiktoken, tqdm, pyarrow (the oldest versions: MIN_VERSIONS below);
Hugging Face tokenizers only for a --tokenizer tokenizer.json that tiktoken cannot run.

The output, exactly (docs/output.md says more):
- parquet rows and JSON Lines values: each non-empty text is a document.
- txt: documents are separated by runs of the literal marker <|endoftext|> together with the
  whitespace around them. A file without markers is one document.
- a document's tokens are the tokenizer's encoding of it (tiktoken's encode_ordinary; special-
  token text is text) and one document token (gpt2: <|endoftext|>; Llama 3: <|begin_of_text|>):
  after it in train.bin/val.bin (nanoGPT), before it in the shard formats (llm.c and its family).
- Long text is cut only where the tokenizer splits anyway (see find_cut) where that is proven
  for its pre-tokenizer, else only where it must be, so the tokens equal the one-shot encoding
  whatever --chunk-size, --workers, --readers and --shard are.
- train/val: whole documents (pieces of ~1M characters for longer ones), chosen by position.
"""
from __future__ import annotations  # (type hints are not evaluated: a reader process has no numpy)

import sys

if sys.version_info < (3, 9):
    sys.exit(f"error: this script needs Python 3.9 or newer, and this is Python "
             f"{sys.version.split()[0]}; run it with a newer python")

import os
import signal

# Ctrl-C everywhere, SIGTERM (kill, Slurm, systemd) where the OS sends it, Ctrl-Break on Windows
STOP_SIGNALS = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGBREAK] if hasattr(signal, "SIGBREAK") else [])


def stop_while_starting(signum, _frame):
    """A stop signal before the run's own handler (StopRequest) is set: every write before then
    is atomic, so exiting at once loses nothing."""
    print("stopped while starting; nothing was lost: run the same command to continue", file=sys.stderr)
    os._exit(128 + signum)


# Set before the imports, which take a while. A reader process (spawned: it runs this file as
# __mp_main__) ignores them: Ctrl-C reaches the whole process group, and the parent alone decides.
if __name__ in ("__main__", "__mp_main__"):
    for sig in STOP_SIGNALS:
        signal.signal(sig, stop_while_starting if __name__ == "__main__" else signal.SIG_IGN)

import argparse
import base64
import binascii
import bz2
import codecs
import decimal
import errno
import functools
import glob
import hashlib
import importlib
import json
import lzma
import math
import multiprocessing
import re
import struct
import tempfile
import threading
import time
import unicodedata
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor, wait as wait_futures
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from multiprocessing.connection import wait as wait_connections
from typing import Callable, Iterator, NamedTuple, Optional

INSTALL = "run: pip install -U numpy tiktoken tqdm pyarrow"
if __name__ != "__mp_main__":  # (a reader process reads and cuts text: it needs none of these)
    try:
        import numpy as np
        import tiktoken
        from tqdm import tqdm
    except ImportError as e:
        sys.exit(f"error: {e.name or e} is not installed or does not load; {INSTALL}")


def arrow():
    """pyarrow and pyarrow.parquet, imported where first needed: only parquet, zstd and lz4
    inputs use them (a reader process without them is ~25 MiB smaller). Their memory comes from
    the system's allocator, which gives freed memory back: pyarrow's own (mimalloc) kept what
    decoding a huge parquet row took while the row's text was copied into strings and cut."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as e:
        raise UserError(f"{e.name or e} is not installed or does not load; {INSTALL}") from None
    pyarrow.set_memory_pool(pyarrow.system_memory_pool())
    return pyarrow, pyarrow.parquet


try:  # POSIX only: each use below has its fallback
    import fcntl
except ImportError:
    fcntl = None
try:  # Windows only
    import msvcrt
except ImportError:
    msvcrt = None

# -----------------------------------------------------------------------------
# the important numbers
CHUNK_CHARS = 1 << 20          # characters of text encoded in one call (--chunk-size)
MAX_CHUNK_CHARS = 1 << 24      # the largest --chunk-size: a larger one takes more memory, no less time
UNIT_BYTES = 32 << 20          # a unit of work: this many bytes of a txt/jsonl file, or parquet
                               # row groups holding about this much text; a compressed file is one
PIECE_CHARS = 1 << 20          # a document longer than this goes to train/val in pieces this long
MAX_SEARCH = 1 << 20           # how far past its target a cut may move to find a safe place
WINDOW_GROWTH = 4              # a txt read adds at least 1/4 of the text held unused (see read_txt)
LONG_SPACE = 1 << 17           # whitespace runs longer than this reach tiktoken in parts (forced cuts)
PARQUET_BATCH_BYTES = 1 << 20  # parquet text turned into Python strings at a time (in whole rows)
STREAM_BLOCK = 1 << 16         # bytes a compressed stream is read (and decompressed) by
TEXT_HEAD = 1 << 16            # bytes of a txt/jsonl file's text checked before any work
IN_FLIGHT_PER_WORKER = 3       # chunks queued per encoding thread (bounds memory)
SEGMENT_CHARS = 64             # a chunk counts each of its segments as this many characters more:
                               # a segment's objects cost memory as text does, so a chunk of tiny
                               # documents is bounded in documents as well
CORES_PER_READER = 8           # encoding threads one reader process feeds, by default (--readers)
PIPE_BYTES = 1 << 20           # a reader process's pipe (Linux's default limit for a user)
SMALL_INPUT = 1 << 20          # input this small is read in this process: starting one costs ~0.3 s
CHECKPOINT_SECONDS = 30.0      # how much work a kill can cost at most (--checkpoint-seconds)
PROGRESS_SECONDS = 300.0       # where output is not a terminal: a progress line at least this often
VAL_FRACTION = 0.0005          # as nanoGPT's openwebtext/prepare.py (the default for --format bin)
VAL_TOKENS = 100_000_000       # llm.c's val shard: the first 100M tokens (the shard formats' default)
SHARD_TOKENS = 100_000_000     # llm.c, modded-nanogpt and build-nanogpt shard size (--shard-tokens)
LLMC_MAX_TOKENS = (1 << 31) - 1  # llm.c's header holds a shard's token count as an int32
BLOCK_SIZE = 1024              # nanoGPT's default block_size: each .bin needs more tokens than this
MODDED_VAL_TOKENS = 10_485_762  # modded-nanogpt's evaluation reads this many from its first val shard
CRC32_POLY = 0xEDB88320        # zlib's CRC-32 (gzip's, zip's), bit-reversed: each output file's checksum
MARKER = "<|endoftext|>"       # the document separator in txt files
MARKER_BYTES = MARKER.encode()
NFC_GROWTH = 3                 # NFC makes UTF-8 text at most this many times longer (Unicode's UAX #15)
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_INPUT = os.path.join(HERE, "train_fineweb.txt")   # nanoGPT's layout: beside this file
# GPT-2's ranks ship beside this file (tiktoken's r50k_base.tiktoken, MIT; the ranks of gpt2 too):
# the default run never downloads. The sha256 is the one tiktoken itself checks for r50k_base.
GPT2_RANKS = os.path.join(HERE, "gpt2.tiktoken")
GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
TRAIN, VAL = 0, 1
SPLITS = ("train", "val")
# files in the output folder
LOCK, CHECKPOINT, SUMMARY, PARTS = ".prepare.lock", "prepare.checkpoint.json", "summary.json", "parts"
CRASH_ENV = "PREPARE_TEST_KILL_BEFORE_CHECKPOINT"  # tests: SIGKILL before the Nth checkpoint
# the oldest versions supported (and tested: tests/test_platforms.py builds an environment with them)
MIN_VERSIONS = dict(numpy="1.22.0", tiktoken="0.5.0", pyarrow="10.0.0", tqdm="4.62.3")


class ValRule(NamedTuple):
    """Which documents go to val: ("fraction", F): piece 1 and then every 1/F-th piece;
    ("tokens", N): the first whole documents until val holds N tokens (see split_chunk)."""
    kind: str
    amount: float


@dataclass(frozen=True)
class Config:
    """What a run is asked to do, built once from the command line (make_config); reader
    processes get a copy. safe_cuts is the tokenizer's (set once it is loaded); the last three
    are sizes the tests make small."""
    inputs: tuple
    out_dir: str
    format: str                 # a key of FORMATS
    val_rule: ValRule
    val_rule_given: bool        # (else the format's default)
    shard_tokens: int
    prefix: Optional[str]       # shard file name prefix (None: a format without shards)
    max_tokens: Optional[int]
    encoding: Optional[str]     # a tiktoken encoding's name, or None: --tokenizer (or gpt2)
    tokenizer: Optional[str]    # a tokenizer's file
    tokenizer_pattern: Optional[str]  # the pre-tokenizer regex of a tiktoken BPE file
    doc_token: Optional[str]    # the text of the token that separates documents (None: the tokenizer's)
    text_column: str
    chunk_size: int
    workers: int
    readers: int
    shard: Optional[tuple]      # (I, N): this run does shard I of N of the units
    merge: bool
    parts_dir: str
    checkpoint_seconds: float
    restart: bool
    skip_bad_files: bool
    strict_utf8: bool
    verify: bool
    safe_cuts: bool = True      # the tokenizer's: documents may be cut at safe places (see find_cut)
    piece_chars: int = PIECE_CHARS
    unit_bytes: int = UNIT_BYTES
    small_input: int = SMALL_INPUT


class UserError(Exception):
    """A problem with the input or the machine, told to the user in one sentence."""


class EncodeFailed(Exception):
    """tiktoken gave up on a text (its regex engine's limits): told with the place by encoded_chunks."""


class DamagedInput(UserError):
    """An input that breaks off (corrupt or cut short): --skip-bad-files leaves its rest out."""

    def __str__(self):
        return (f"{self.args[0]}; work done so far is kept: replace the file and run the same command "
                "(with --restart if the file changed), or run it with --skip-bad-files to leave the rest out")


def version_tuple(v: str) -> tuple:
    return tuple((list(map(int, re.findall(r"\d+", v))) + [0, 0, 0])[:3])


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


# -----------------------------------------------------------------------------
# inputs: a file's bytes, decompressed as they are read

# compression suffix -> (what it is called, the magic its files start with)
COMPRESSIONS = {".gz": ("gzip", b"\x1f\x8b"), ".bz2": ("bzip2", b"BZh"), ".xz": ("xz", b"\xfd7zXZ\x00"),
                ".zst": ("zstd", b"\x28\xb5\x2f\xfd"), ".lz4": ("lz4", b"\x04\x22\x4d\x18")}


class Input(NamedTuple):
    """An input file, as checked before any work (see its kind's check)."""
    path: str
    kind: str                  # a key of KINDS
    compression: str           # its compression suffix, or ""
    size: int
    mtime_ns: int
    groups: Optional[list] = None  # parquet: (rows, bytes of text) per row group
    bad: bool = False          # left out (--skip-bad-files): it has no units
    most: Optional[int] = None  # at most how many bytes of text and documents it holds (together)
    # where that is sure, else None (see most_tokens): a plain txt/jsonl file at most its size + 1;
    # parquet: see text_bound; a compressed file: not sure


class Unit(NamedTuple):
    """A unit of work: fixed by the inputs alone, never by how many readers, workers or machines
    run. Its kind decides what lo and hi count (txt/jsonl: bytes; parquet: row groups)."""
    file: int                  # index of its Input
    lo: float
    hi: float
    weight: int                # bytes of the input it stands for (the progress bar's)


STREAM_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)
DECOMPRESSORS = {"gzip": lambda: zlib.decompressobj(wbits=31), "bzip2": bz2.BZ2Decompressor,
                 "xz": lzma.LZMADecompressor}
# The most one bzip2 block decompresses to: at most 900,000 bytes (100,000 per level) after its
# first stage, which shortens runs of one byte: undone, each 5 (four alike, a count) give 4 + 255.
BZIP2_BLOCK_OUT = 9 * 100_000 // 5 * (4 + 255)


class Unchecked:
    """bzip2's decompressed bytes that wait until their block's CRC has been checked: the CRC is
    checked once the whole block has come out (BZ2Decompressor raises only then), and the next
    block comes out only after that. So all that waits is checked when a call gave nothing (the
    decompressor then waits for input, between blocks or inside one, never with a block half given
    out) or the stream ended; before that, every byte more than BZIP2_BLOCK_OUT before the newest
    one is (its block has ended). At most BZIP2_BLOCK_OUT + STREAM_BLOCK bytes wait here."""

    def __init__(self):
        self.blocks, self.size = deque(), 0

    def given(self, block, all_checked) -> Iterator[bytes]:
        """Adds what one call gave; gives out the blocks now known to be checked, in order."""
        if block:
            self.blocks.append(block)
            self.size += len(block)
        keep = 0 if all_checked else BZIP2_BLOCK_OUT
        while self.blocks and self.size - len(self.blocks[0]) >= keep:
            self.size -= len(self.blocks[0])
            yield self.blocks.popleft()


def decompressed_blocks(raw, codec):
    """The decompressed bytes of raw, in blocks of at most STREAM_BLOCK, member after member
    (gzip, bzip2 and xz files may be concatenated), as Python's own readers take them: zero
    bytes after a member are padding (gzip's, xz's), and what follows the last bzip2 or xz
    stream without starting another is ignored. Raises at damage, or EOFError when the file ends inside a
    member (or is empty: no compressed file is). bzip2 gives out only what its CRCs have checked (see
    Unchecked); gzip and xz check theirs at a member's or block's end, after the text came out."""
    new = DECOMPRESSORS[codec]
    dec, data, block = new(), raw.read(STREAM_BLOCK), b""
    first, made = True, 0  # the first member; bytes the current member gave
    unchecked = Unchecked() if codec == "bzip2" else None
    if not data:
        raise EOFError("the file is empty")
    while True:
        if dec.eof:
            data = dec.unused_data or raw.read(STREAM_BLOCK)
            while data and not data.lstrip(b"\0"):
                data = raw.read(STREAM_BLOCK)
            data = data.lstrip(b"\0")
            if not data:
                return
            dec, first, made = new(), False, 0
        elif not data and getattr(dec, "needs_input", len(block) < STREAM_BLOCK) and not (unchecked and block):
            # (zlib: output left; bzip2: a call that gives nothing comes first, see Unchecked)
            data = raw.read(STREAM_BLOCK)
            if not data:
                raise EOFError("the file ends inside a compressed block: it was cut short")
        try:
            block = dec.decompress(data, STREAM_BLOCK)
        except STREAM_ERRORS:
            if first or made or codec == "gzip":
                raise
            return  # (not another stream: ignored, as bz2.open and lzma.open do)
        data = getattr(dec, "unconsumed_tail", b"")  # (zlib keeps what max_length left over there)
        made += len(block)
        if unchecked is not None:
            yield from unchecked.given(block, dec.eof or not block)
        elif block:
            yield block


def arrow_blocks(stream, raw):
    """The blocks of a pyarrow stream; its errors as OSError (one of STREAM_ERRORS)."""
    pa, _ = arrow()
    if os.fstat(raw.fileno()).st_size == 0:
        raise EOFError("the file is empty")
    try:
        while block := stream.read(STREAM_BLOCK):
            yield block
    except pa.ArrowException as e:
        raise OSError(str(e)) from None


class Decompressed:
    """A compressed file's bytes as a stream whose read(n) gives out everything decompressed
    (bzip2: and checked) before a damage, and raises only when nothing is left before it: what is
    read of a damaged file never depends on n (the blocks are always STREAM_BLOCK)."""

    def __init__(self, blocks, source=None):
        self.blocks, self.source, self.held, self.error, self.pos = blocks, source, b"", None, 0

    def read(self, n):
        parts, have = [self.held], len(self.held)
        while have < n and self.error is None:
            try:
                block = next(self.blocks, b"")
            except STREAM_ERRORS as e:
                self.error = e
                break
            if not block:
                break
            parts.append(block)
            have += len(block)
        data = b"".join(parts)
        if not data and self.error is not None:
            raise self.error
        data, self.held = data[:n], data[n:]
        self.pos += len(data)
        return data

    def tell(self):
        return self.pos


def open_stream(inp: Input):
    """The input's bytes as a binary stream (decompressed as it is read), and the file under it
    (whose position counts compressed bytes)."""
    raw = open(inp.path, "rb")
    codec = COMPRESSIONS.get(inp.compression, ("",))[0]
    if codec in DECOMPRESSORS:
        return Decompressed(decompressed_blocks(raw, codec)), raw
    if codec:  # zstd, lz4: pyarrow's codecs (their stream closes raw when it goes: it is kept)
        pa, _ = arrow()
        stream = pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), codec)
        return Decompressed(arrow_blocks(stream, raw), stream), raw
    return raw, raw


def stream_error(inp, where, e):
    what = f"the {COMPRESSIONS[inp.compression][0]} stream is damaged or cut short" if inp.compression \
        else "it cannot be read"
    return DamagedInput(f"{inp.path}: {what} {where} ({e})")


def reads_to_damage(stream, inp: Input, cut: Cutter, skip_bad: bool) -> Callable:
    """stream.read, which with --skip-bad-files ends the stream where it is damaged (b""), with a
    warning and the file counted: everything before the damage is kept (see Decompressed)."""
    damaged = False

    def read(n):
        nonlocal damaged
        try:
            return b"" if damaged else stream.read(n)
        except STREAM_ERRORS as e:
            if not skip_bad:
                raise
            damaged = True
            print(f"warning: leaving out the rest of {inp.path} from byte {stream.tell():,} of its text: "
                  f"{stream_error(inp, 'there', e).args[0]}; what came before is kept", file=sys.stderr)
            cut.counts.skipped_files.append(inp.path)
            return b""
    return read


# -----------------------------------------------------------------------------
# documents: where text may be cut

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
    """Where the reading of a unit stands: the Cutter's state and its kind's position. Saved in
    each checkpoint (asdict) and carried by each chunk that may end a run."""
    in_doc: bool = False        # the current document has text
    piece_len: int = 0          # its characters since its last piece ended
    offset: Optional[int] = None  # txt/jsonl: the byte of the text where the unread text starts
    begun: Optional[bool] = None  # txt/jsonl: past the start of the unit's first document
    row: Optional[int] = None   # parquet: rows of the unit done
    token: Optional[int] = None  # --merge: tokens of the unit's part done
    progress: int = 0           # bytes of the unit done, for the progress bar


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
                if cut is None:
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


# -----------------------------------------------------------------------------
# input kinds: for each, how a file is checked before any work, cut into units, and read. A
# reader is a generator that gives a unit's documents to the Cutter and yields its progress
# (bytes of the unit) whenever a chunk's worth is ready; its position is kept in a Place.

def left_out(problem: str, fix: str, skip_bad: bool, what: str = "left out"):
    """A file --skip-bad-files leaves out (with a warning), or that stops the run."""
    if not skip_bad:
        raise UserError(f"{problem}; {fix}, or run with --skip-bad-files to leave it out")
    print(f"warning: {problem}: {what} (--skip-bad-files)", file=sys.stderr)


def bad_input(inp: Input) -> Input:
    """An input left out with --skip-bad-files: it has no units and makes no token."""
    return inp._replace(bad=True, most=0)



def complete_utf8(data):
    """Length of the longest prefix of data that does not end inside a UTF-8 sequence."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:   # a lead byte (or ASCII): is its sequence complete?
            need = 1 if byte < 0xC0 else 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return len(data) - back if need > back else len(data)
    return len(data)


def decode(data, start, inp, cut, strict):
    """UTF-8 text of data, which starts at byte start of the input's text (or, for parquet, is
    row start: "row N"). Invalid bytes become surrogates (one per byte, so byte offsets stay
    exact); Cutter.take replaces and counts them."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        at = f"in {start}" if isinstance(start, str) else \
            f"at byte {start + e.start}" + (" of its text" if inp.compression else "")
        where = f"{inp.path}: invalid UTF-8 {at}"
        if strict:
            raise UserError(f"{where}; fix the file, or run without --strict-utf8 to replace bad "
                            "bytes with U+FFFD") from None
        cut.dirty = True
        cut.counts.first_bad = cut.counts.first_bad or where.replace(": invalid UTF-8", "")
        return data.decode("utf-8", "surrogateescape")


def utf8_len(text):
    """Bytes of text read with decode (a surrogate stands for one bad byte)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogateescape"))


def blocks_up_to(stream, offset):
    """The stream's bytes up to offset, in blocks of at most 1 MiB (fewer where it ends first)."""
    while offset > 0:
        block = stream.read(min(offset, 1 << 20))
        if not block:
            return
        offset -= len(block)
        yield block


def skip_to(stream, raw, offset):
    """Moves a fresh stream to offset: a seek, or (compressed) reading up to it."""
    if stream is raw:
        stream.seek(offset)
    elif sum(map(len, blocks_up_to(stream, offset))) < offset:
        raise EOFError("the file ended before the checkpoint's position (was it changed?)")


def line_number(inp, offset):
    """The line (from 1) that starts at byte offset of the input's text: counted, for messages."""
    stream, raw = open_stream(inp)
    with raw:
        return 1 + sum(block.count(b"\n") for block in blocks_up_to(stream, offset))


# --- txt and JSON Lines: units are byte ranges; a document belongs to the unit it starts in

BLANK = b"\xef\xbb\xbf \t\r\n"  # what may come before a JSON Lines file's first line


def text_head(inp: Input, config: Config, whole_line: bool) -> Optional[tuple]:
    """The first TEXT_HEAD bytes of a txt or JSON Lines file's text (whole_line: at least up to
    the end of its first line), and whether more may follow; None when it cannot be read and
    is left out (--skip-bad-files). Refuses UTF-16/32."""
    stream, raw = open_stream(inp)
    try:
        with raw:
            parts = [stream.read(TEXT_HEAD)]
            while whole_line and len(parts[-1]) == TEXT_HEAD and \
                    b"\n" not in (parts[-1] if len(parts) > 1 else parts[0].lstrip(BLANK)):
                parts.append(stream.read(TEXT_HEAD))
    except STREAM_ERRORS as e:
        left_out(stream_error(inp, "at its start", e).args[0], "replace the file", config.skip_bad_files)
        return None
    head = b"".join(parts)
    if head.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):
        raise UserError(f"{inp.path} is UTF-16/32 text; convert it to UTF-8 first "
                        f"(e.g. iconv -f UTF-16 -t UTF-8 {inp.path} > out.txt)")
    return head, len(parts[-1]) == TEXT_HEAD


def check_txt(inp: Input, config: Config, _in_folder: bool) -> Input:
    """Checks that a text file's start can be read, before any work."""
    return inp if text_head(inp, config, False) else bad_input(inp)


def check_jsonl(inp: Input, config: Config, in_folder: bool) -> Optional[Input]:
    """Checks a JSON Lines file's first line before any work: the input to read, or it left
    out as bad (damaged, with --skip-bad-files), or None to ignore it (a .json file found in a
    folder whose first line is not a JSON object with the text key: configs, metadata; that
    line is read whole). Refuses a JSON array, and a first line without the text key."""
    column = config.text_column
    folder_json = in_folder and inp.path[:len(inp.path) - len(inp.compression)].lower().endswith(".json")
    found = text_head(inp, config, folder_json)
    if not found:
        return bad_input(inp)
    head, more = found
    body = head.lstrip(BLANK)
    if not body or (b"\n" not in body and more):
        return inp  # (a first line longer than the head is checked as it is read)
    number = head[:len(head) - len(body)].count(b"\n") + 1
    try:
        row, why = load_json(body.split(b"\n")[0].decode("utf-8", "replace")), None
    except (ValueError, RecursionError) as e:
        row, why = None, not_json_reason(e)
    documents = isinstance(row, dict) and column in row
    if folder_json and not documents:
        print(f"note: leaving out {inp.path}: a .json file whose first line is not a JSON object with "
              f"the key '{column}' (.json files in folders are read only when they hold JSON Lines)",
              file=sys.stderr)
        return None
    if body.startswith(b"["):
        raise UserError(f"{inp.path} is one big JSON array, not JSON Lines (one object per line); "
                        f"convert it, e.g. jq -c '.[]' file.json > file.jsonl")
    if row is None and not config.skip_bad_files:
        raise not_json(inp, number, why)
    if row is not None and not documents:
        raise no_text_key(inp, number, row, column)
    return inp


def byte_units(k: int, inp: Input, unit_bytes: int) -> list:
    """unit_bytes-long byte ranges of a file (a document belongs to the range it starts in, see
    read_txt/read_jsonl); a compressed file is one unit, read from its start."""
    if inp.compression or inp.size <= unit_bytes:
        return [Unit(k, 0, math.inf if inp.compression else inp.size, inp.size)]
    return [Unit(k, lo, min(lo + unit_bytes, inp.size), min(unit_bytes, inp.size - lo))
            for lo in range(0, inp.size, unit_bytes)]


def byte_position(inp: Input, unit: Unit, place: Optional[Place]) -> str:
    offset = unit.lo if place is None or place.offset is None else place.offset
    return f"byte {offset:,}" + (" of its text" if inp.compression else "")


def byte_progress(inp, unit, raw, offset):
    """Bytes of the unit done, at byte offset of its text (compressed: bytes of the file read)."""
    return (raw.tell() if inp.compression else min(offset, unit.hi)) - unit.lo


def text_start(inp):
    """Bytes to skip at the start of a text file: a UTF-8 byte order mark (text_head refused UTF-16/32)."""
    stream, raw = open_stream(inp)
    with raw:
        head = stream.read(3)
    return 3 if head == b"\xef\xbb\xbf" else 0


class TextWindow:
    """The text of a file read from a byte offset, decoded as it comes: buf is what is not used
    yet, from character base of the text read; held is buf's length in bytes; end_at is the
    character at byte hi (the unit's end), once it is read. Bytes of a character cut by a read
    wait in carry for the next."""

    def __init__(self, read, pos, hi, decode):
        self.read, self.pos, self.hi, self.decode = read, pos, hi, decode
        self.carry, self.buf, self.base, self.held = b"", "", 0, 0
        self.end_at = 0 if pos >= hi else None

    def fill(self, want: int) -> bool:
        """Reads up to want bytes more (not past hi before it is reached); whether the file ended."""
        block = self.read(want if self.pos >= self.hi else min(want, self.hi - self.pos))
        eof, start = not block, self.pos - len(self.carry)
        self.pos += len(block)
        data = self.carry + block
        n = len(data) if eof else complete_utf8(data)
        data, self.carry = data[:n], data[n:]
        self.buf += self.decode(data, start)
        self.held += len(data)
        if self.end_at is None and self.pos >= self.hi:
            self.end_at = self.base + len(self.buf) + (1 if self.carry else 0)
        return eof

    def drop(self, k: int):
        """Uses up buf's first k characters."""
        self.base, self.buf, self.held = self.base + k, self.buf[k:], self.held - utf8_len(self.buf[:k])

    def unread_offset(self) -> int:
        """The byte where the text not yet used starts."""
        return self.pos - len(self.carry) - self.held


def add_text(cut, buf, eof):
    """Gives cut the documents in buf; returns how many characters of buf it used. Every
    boundary before the last marker in buf is settled (text follows it), so the text up to that
    marker splits into documents at once; only the last boundary may need more text."""
    i = 0
    last = buf.rfind(MARKER)
    if last >= 0:
        first, *rest = buf[:last].split(MARKER)
        cut.add_documents([first.rstrip()])  # (it may continue a document begun in earlier text)
        cut.add_documents([doc for doc in map(str.strip, rest) if doc])  # (empty between markers)
        end, settled = boundary_end(buf, last, eof)
        if not settled:
            return last
        i = end
    return i + cut.add(buf[i:], final=eof)


def first_boundary(text: TextWindow, eof: bool) -> Optional[bool]:
    """Drops the text before the unit's first boundary (it ends the previous unit's last
    document): whether the boundary is reached, or None when the unit holds none (no marker
    starts before hi)."""
    k = text.buf.find(MARKER)
    if k < 0 or (text.end_at is not None and text.base + k >= text.end_at):
        if k >= 0 or eof or (text.end_at is not None and text.base + len(text.buf) >= text.end_at + len(MARKER)):
            return None
        k = max(0, len(text.buf) - len(MARKER) + 1)  # (a marker may start in what is kept)
    text.drop(k)
    return text.buf.startswith(MARKER)


def take_documents(cut: Cutter, text: TextWindow, eof: bool) -> bool:
    """Gives cut the documents in the window; False once the unit's documents have ended: at a
    boundary whose last marker starts at or past hi (the next unit's)."""
    m = text.buf.find(MARKER, max(text.end_at - text.base, 0)) if text.end_at is not None else -1
    if m >= 0:
        add_text(cut, text.buf[:boundary_start(text.buf, m)], True)
        return False
    text.drop(add_text(cut, text.buf, eof))
    return True


def read_txt(inp: Input, unit: Unit, place: Place, cut: Cutter, config: Config) -> Iterator[int]:
    """The documents of a text file that belong to unit [lo, hi) of its bytes: the file's first
    document when lo is 0, and each document after a boundary whose last marker starts in
    [lo, hi). A reader reads on past hi to finish its last document, and skips what comes
    before its first marker."""
    if place.offset is None:
        place.offset, place.begun = unit.lo or text_start(inp), unit.lo == 0
    stream, raw = open_stream(inp)
    with raw:
        skip_to(stream, raw, place.offset)
        if not place.begun:  # bytes that end a character begun before lo are not ours
            head = stream.read(3)  # (lo > 0: a plain file, which seeks)
            place.offset += next((i for i, b in enumerate(head) if b & 0xC0 != 0x80), len(head))
            stream.seek(place.offset)
        text = TextWindow(reads_to_damage(stream, inp, cut, config.skip_bad_files), place.offset, unit.hi,
                          lambda data, start: decode(data, start, inp, cut, config.strict_utf8))
        while True:
            # What the Cutter cannot use yet (no cut found yet, a boundary not settled) is held and
            # scanned again after each read: each read adds at least 1/WINDOW_GROWTH of it, so the
            # scans take time in proportion to the text, and the window holds at most 1.25 times
            # what it must
            eof = text.fill(max(cut.wanted(), text.held // WINDOW_GROWTH))
            if not place.begun:
                place.begun = first_boundary(text, eof)
                if place.begun is None:
                    break  # the unit holds no document
            if place.begun and not take_documents(cut, text, eof):
                break
            place.offset = text.unread_offset()
            if eof:
                break
            if cut.chars >= config.chunk_size:
                yield byte_progress(inp, unit, raw, place.offset)
        cut.end_document()



def read_jsonl(inp: Input, unit: Unit, place: Place, cut: Cutter, config: Config) -> Iterator[int]:
    """The lines of a JSON Lines file that start in unit [lo, hi) of its bytes (a reader skips
    the line it starts inside and reads on to finish its last); the string under --text-column
    of each is a document. place.offset: where the next line starts."""
    if place.offset is None:
        place.offset, place.begun = unit.lo, unit.lo == 0
    stream, raw = open_stream(inp)
    with raw:
        if not place.begun:  # the line begun before lo is not ours
            skip_to(stream, raw, place.offset - 1)
            place.offset, place.begun = place.offset - 1 + len(stream.readline()), True
        else:
            skip_to(stream, raw, place.offset)
        pos, read = place.offset, reads_to_damage(stream, inp, cut, config.skip_bad_files)
        for lines in line_blocks(read, cut.wanted):
            texts, empty = [], 0
            try:
                for line in lines:
                    if pos >= unit.hi:
                        break
                    body = line[3:] if pos == 0 and line.startswith(b"\xef\xbb\xbf") else line
                    if body.strip():  # (blank lines are no documents)
                        text = json_text(inp, body, pos, cut, config)
                        if text is BAD_LINE:
                            pass
                        elif text:
                            texts.append(text)
                        else:
                            empty += 1
                    pos += len(line) + 1
            finally:  # (what came before a bad line is kept)
                cut.add_documents(texts)
                cut.counts.empty_rows += empty
                place.offset = pos
            if pos >= unit.hi:
                break
            if cut.chars >= config.chunk_size:
                yield byte_progress(inp, unit, raw, pos)


def line_blocks(read, size):
    """The lines (without their newline) of the bytes read(size()) gives, a list per block; the
    last line may lack its newline. A line longer than a block is gathered in parts and joined
    once, so a long line costs time in proportion to its length."""
    parts = []
    while block := read(size()):
        lines = block.split(b"\n")
        if len(lines) == 1:
            parts.append(block)
            continue
        lines[0] = b"".join([*parts, lines[0]])
        parts = [lines.pop()]
        yield lines
    if any(parts):
        yield [b"".join(parts)]


BAD_LINE = object()   # json_text's answer for a line that is not JSON, left out (--skip-bad-files)


def json_text(inp, line, start, cut, config):
    """The document in one JSON line: its value under --text-column (None for null or ""). A line that
    is not JSON stops the run, or with --skip-bad-files is left out alone, counted (BAD_LINE)."""
    column = config.text_column
    try:
        row = load_json(decode(line, start, inp, cut, config.strict_utf8))
    except (ValueError, RecursionError) as e:
        if not config.skip_bad_files:
            raise not_json(inp, line_number(inp, start), not_json_reason(e)) from None
        cut.counts.bad_lines += 1
        cut.counts.first_bad_line = cut.counts.first_bad_line or [inp.path, start]
        return BAD_LINE
    if not isinstance(row, dict) or column not in row:
        raise no_text_key(inp, line_number(inp, start), row, column)
    value = row[column]
    if value is not None and not isinstance(value, str):
        raise UserError(f"{inp.path}: line {line_number(inp, start):,}: '{column}' holds "
                        f"{type(value).__name__} {str(value)[:40]!r}, not text; name the text key with --text-column")
    if value and not value.isascii() and SURROGATE.search(value):  # lone \\ud800 escapes, or bad bytes
        cut.dirty = True
    return value


def load_json(text):
    """json.loads without Python's limit on an integer's digits (4,300 since 3.11; a line holding a
    longer one is JSON all the same): on that error the line is parsed again with each integer kept
    as a Decimal (exact, and made in time linear in its digits, where int() is quadratic)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except ValueError:  # (with json.loads' own hooks only int() raises another ValueError)
        return json.loads(text, parse_int=decimal.Decimal)


def not_json_reason(e):
    return "it is nested too deeply" if isinstance(e, RecursionError) else str(e)


def not_json(inp, number, why):
    return UserError(f"{inp.path}: line {number:,} is not JSON ({why}); fix or remove that line, or "
                     "run with --skip-bad-files to leave out such lines")


def no_text_key(inp, number, row, column):
    keys = ", ".join(map(str, row)) if isinstance(row, dict) else f"a JSON {type(row).__name__}"
    return UserError(f"{inp.path}: line {number:,} has no key '{column}' (it holds {keys}); name the "
                     "text key with --text-column")


# --- parquet: units are runs of row groups; each non-empty text is a document

def check_parquet(inp: Input, config: Config, _in_folder: bool) -> Input:
    """Checks from the footer that the file has a text column; the input with its row groups'
    (rows, bytes of text) and its most bytes of text and documents where the footer tells them
    (see text_bound), or left out as bad."""
    pa, pq = arrow()
    column = config.text_column
    try:
        meta = pq.ParquetFile(inp.path).metadata
        schema = meta.schema.to_arrow_schema()
    except (OSError, pa.ArrowException) as e:
        left_out(f"{inp.path}: not a readable parquet file ({e})", "replace it", config.skip_bad_files)
        return bad_input(inp)
    if column not in schema.names:
        raise UserError(f"{inp.path} has no column '{column}' (its columns: {', '.join(schema.names)}); "
                        "name the text column with --text-column")
    kind = schema.field(column).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise UserError(f"{inp.path}: column '{column}' holds {kind}, not text; "
                        "name the text column with --text-column")
    chunks = text_chunks(meta, column)
    return inp._replace(groups=[(rows, chunk.total_uncompressed_size) for rows, chunk in chunks],
                        most=text_bound(chunks, lambda _g: None))


def text_chunks(meta, column) -> list:
    """(rows, the text column's chunk) of each row group, from a parquet footer."""
    col = [meta.schema.column(i).path for i in range(meta.num_columns)].index(column)  # (a leaf's index)
    return [(meta.row_group(g).num_rows, meta.row_group(g).column(col)) for g in range(meta.num_row_groups)]


PLAIN_ENCODINGS = {"PLAIN", "DELTA_LENGTH_BYTE_ARRAY", "RLE", "BIT_PACKED"}  # (they store every row's text)
DICTIONARY_ENCODINGS = {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}


def text_bound(chunks, longest: Callable, limit=math.inf) -> Optional[int]:
    """At most how many bytes of text and documents a parquet text column holds (see
    Input.most), from its (rows, column chunk) per row group: a column chunk's uncompressed size
    holds the text of its plainly stored rows, and a dictionary-encoded row's text is one of
    its dictionary's, at most the longest (longest(g), asked only while the footer's part of
    the bound leaves limit in reach; None when not known). None when that is not sure (longest
    unknown, other encodings: prefix encodings store less than the text) or passes limit."""
    if any(not set(chunk.encodings) <= PLAIN_ENCODINGS | DICTIONARY_ENCODINGS for _, chunk in chunks):
        return None
    most = sum(chunk.total_uncompressed_size + rows for rows, chunk in chunks)
    for g, (rows, chunk) in enumerate(chunks):
        entry = longest(g) if most <= limit and set(chunk.encodings) & DICTIONARY_ENCODINGS else 0
        if entry is None:
            return None
        most += rows * entry
    return most if most <= limit else None


def dictionary_bound(inp: Input, config: Config, limit) -> Optional[int]:
    """text_bound of a parquet file whose text is dictionary-encoded: each row group's dictionary
    (the first page of its column chunk, read with its first row) gives its longest text."""
    pa, pq = arrow()
    try:
        pf = pq.ParquetFile(inp.path, read_dictionary=[config.text_column], pre_buffer=False,
                            buffer_size=PARQUET_BATCH_BYTES)
        return text_bound(text_chunks(pf.metadata, config.text_column),
                          functools.partial(longest_entry, pf, config.text_column), limit)
    except (OSError, pa.ArrowException):
        return None  # (the run finds the damage where it is)


def longest_entry(pf, column, g) -> Optional[int]:
    """The length in bytes of the longest text in row group g's dictionary."""
    pa, _ = arrow()
    import pyarrow.compute as pc  # (pyarrow is loaded: see arrow)
    batch = next(pf.iter_batches(batch_size=1, row_groups=[g], columns=[column], use_threads=False), None)
    if batch is None:
        return 0
    values = batch.column(0)
    if not pa.types.is_dictionary(values.type):
        return None
    return pc.max(pc.binary_length(values.dictionary)).as_py() or 0


def parquet_units(k: int, inp: Input, unit_bytes: int) -> list:
    """Runs of row groups [lo, hi) holding about unit_bytes of text; weight: rows, pro rata."""
    units, lo, text, rows, total = [], 0, 0, 0, sum(r for r, _ in inp.groups) or 1
    for g, (_, nbytes) in enumerate(inp.groups):
        text += nbytes
        if text >= unit_bytes or g == len(inp.groups) - 1:
            before, rows = rows, rows + sum(r for r, _ in inp.groups[lo:g + 1])
            units.append(Unit(k, lo, g + 1, inp.size * rows // total - inp.size * before // total))
            lo, text = g + 1, 0
    return units


def parquet_first_row(inp, unit):
    return sum(rows for rows, _ in inp.groups[:unit.lo])


def parquet_position(inp: Input, unit: Unit, place: Optional[Place]) -> str:
    return f"row {parquet_first_row(inp, unit) + (place.row or 0 if place else 0):,}"


def parquet_readers(inp: Input, column: str) -> tuple:
    """The file opened twice: for its text, and for its dictionaries (see parquet_batches)."""
    _, pq = arrow()
    return (pq.ParquetFile(inp.path, buffer_size=PARQUET_BATCH_BYTES, pre_buffer=False),
            pq.ParquetFile(inp.path, buffer_size=PARQUET_BATCH_BYTES, pre_buffer=False, read_dictionary=[column]))


def parquet_batches(readers: tuple, inp: Input, g: int, column: str):
    """Row group g's text column in batches of about PARQUET_BATCH_BYTES of text: by the
    footer's size, which counts a dictionary-encoded text once however many rows repeat it, and
    for such text at most as many rows as hold that much at the dictionary's longest text."""
    plain, dictionaries = readers
    rows, nbytes = inp.groups[g]
    batch_rows = max(1, PARQUET_BATCH_BYTES * rows // max(nbytes, 1))
    if batch_rows > 1 and set(text_chunks(plain.metadata, column)[g][1].encodings) & DICTIONARY_ENCODINGS:
        longest = longest_entry(dictionaries, column, g)
        batch_rows = max(1, min(batch_rows, PARQUET_BATCH_BYTES // max(longest or 1, 1)))
    return plain.iter_batches(batch_size=batch_rows, row_groups=[g], columns=[column], use_threads=False)


def read_parquet(inp: Input, unit: Unit, place: Place, cut: Cutter, config: Config) -> Iterator[int]:
    """The rows of row groups [lo, hi) of a parquet file's text column, in batches of about
    PARQUET_BATCH_BYTES of text (parquet_batches), read page by page: of a row group only the
    page being decoded is held, and a batch is turned into strings a slice at a time, sized by
    what its rows hold."""
    if place.row is None:
        place.row = 0
    done, total = 0, sum(rows for rows, _ in inp.groups[unit.lo:unit.hi])
    pa, pq = arrow()
    try:
        readers = parquet_readers(inp, config.text_column)
        for g in range(unit.lo, unit.hi):
            rows = inp.groups[g][0]
            at = done  # the unit's row where the next batch starts
            if done + rows > place.row:
                batches = parquet_batches(readers, inp, g, config.text_column)
                for batch in batches:
                    column, n = batch.column(0), batch.num_rows
                    del batch
                    if at + n >= done + rows:  # (the group's last batch: the reader's pages are freed before
                        batches.close()        # its text is copied into strings)
                    # (the footer's sizes are an average: rows may hold more)
                    step = max(1, n * PARQUET_BATCH_BYTES // (column.nbytes + SEGMENT_CHARS * n))
                    for lo in range(0, n, step):
                        new = column.slice(lo, step)[max(place.row - at, 0):]  # (rows done before a resume)
                        at += min(step, n - lo)
                        if lo + step >= n:
                            del column  # (the batch's last slice: only it is held while its text is copied)
                        if not len(new):
                            continue
                        try:
                            texts = new.to_pylist()
                        except UnicodeDecodeError:  # (a writer that let invalid UTF-8 in: as in text files)
                            first = parquet_first_row(inp, unit) + at - len(new)
                            texts = [b if b is None else decode(b, f"row {first + k:,}", inp, cut, config.strict_utf8)
                                     for k, b in enumerate(new.cast(pa.binary()).to_pylist())]
                        del new
                        docs = [text for text in texts if text]
                        cut.add_documents(docs)
                        cut.counts.empty_rows += len(texts) - len(docs)
                        del texts, docs  # (a long document's pieces are copies: its text is not held while they go)
                        place.row = at
                        if cut.chars >= config.chunk_size:
                            yield unit.weight * place.row // max(total, 1)
            done += rows
    except (OSError, pa.ArrowException) as e:
        raise DamagedInput(f"{inp.path}: the parquet file is damaged near row "
                           f"{parquet_first_row(inp, unit) + place.row:,} ({e})") from None


# --- where a unit's k-th document is, read again from a place: --max-tokens names its last
# document (once, at the end of a run)

def document_place(inputs: list, unit: Unit, place: Optional[Place], k: int, config: Config) -> str:
    """Where the k-th document (k >= 1) that ends after place (None: the unit's start) is."""
    inp = inputs[unit.file]
    return DOCUMENT_PLACES[inp.kind](inp, unit, place or Place(), k, config)


def read_up_to_damage(stream) -> Callable:
    """stream.read, ending the stream where it is damaged (as --skip-bad-files did, silently now)."""
    def read(n):
        try:
            return stream.read(n)
        except STREAM_ERRORS:
            return b""
    return read


def txt_document_place(inp: Input, unit: Unit, place: Place, k: int, _config) -> str:
    """A document of a txt file is its text other than whitespace between markers (see read_txt):
    where the k-th ends, the byte its marker starts at (or the file's end)."""
    pos = place.offset if place.offset is not None else unit.lo or text_start(inp)  # (the byte of data[0])
    begun, has_text = place.begun if place.begun is not None else unit.lo == 0, place.in_doc
    decoder, data, eof = codecs.getincrementaldecoder("utf-8")("replace"), b"", False
    stream, raw = open_stream(inp)
    with raw:
        skip_to(stream, raw, pos)
        read = read_up_to_damage(stream)
        while not eof:
            block = read(STREAM_BLOCK)
            data, eof, i = data + block, not block, 0
            while (m := data.find(MARKER_BYTES, i)) >= 0 or eof:
                end = m if m >= 0 else len(data)
                has_text = has_text or bool(decoder.decode(data[i:end], True).strip())
                if begun and has_text:  # (before the unit's first marker: the previous unit's document)
                    k -= 1
                    if k == 0 and m < 0:
                        return f"the last one read from {inp.path}"
                    if k == 0:
                        return f"the one of {inp.path} that ends before byte {pos + m:,}" + \
                            (" of its text" if inp.compression else "")
                begun, has_text, i = True, False, end + len(MARKER_BYTES)
                if m < 0:
                    break
            keep = max(i, len(data) - len(MARKER_BYTES) + 1)  # (a marker may start in what is kept)
            has_text = has_text or bool(decoder.decode(data[i:keep]).strip())
            data, pos = data[keep:], pos + keep
    raise AssertionError(f"{inp.path} holds fewer documents than were read from it")


def jsonl_document_place(inp: Input, unit: Unit, place: Place, k: int, config: Config) -> str:
    """The line of the k-th JSON line with text (see read_jsonl)."""
    pos, cut = place.offset if place.offset is not None else unit.lo, Cutter(Place(), 1, 1)  # (cut: json_text's counts)
    stream, raw = open_stream(inp)
    with raw:
        if place.offset is None and unit.lo:  # (the line begun before lo is not the unit's)
            skip_to(stream, raw, unit.lo - 1)
            pos = unit.lo - 1 + len(stream.readline())
        else:
            skip_to(stream, raw, pos)
        for lines in line_blocks(read_up_to_damage(stream), lambda: STREAM_BLOCK):
            for line in lines:
                body = line[3:] if pos == 0 and line.startswith(b"\xef\xbb\xbf") else line
                text = json_text(inp, body, pos, cut, config) if body.strip() else None
                if text and text is not BAD_LINE:
                    k -= 1
                    if k == 0:
                        return f"{inp.path} line {line_number(inp, pos):,}"
                pos += len(line) + 1
    raise AssertionError(f"{inp.path} holds fewer documents than were read from it")


def parquet_document_place(inp: Input, unit: Unit, place: Place, k: int, config: Config) -> str:
    """The row of the k-th row with text, not null nor empty (see read_parquet)."""
    pa, _ = arrow()
    import numpy as np  # (here, in the main process at the end of a run: a reader imports no numpy)
    import pyarrow.compute as pc
    readers = parquet_readers(inp, config.text_column)
    row, skip = parquet_first_row(inp, unit), place.row or 0
    for g in range(unit.lo, unit.hi):
        for batch in parquet_batches(readers, inp, g, config.text_column):
            texts = pc.fill_null(pc.greater(pc.binary_length(batch.column(0).cast(pa.large_binary())), 0), False)
            docs = np.flatnonzero(texts.to_numpy(zero_copy_only=False)[skip:]) + skip
            skip = max(skip - len(texts), 0)
            if len(docs) >= k:
                return f"{inp.path} row {row + int(docs[k - 1]):,}"
            k, row = k - len(docs), row + len(texts)
    raise AssertionError(f"{inp.path} holds fewer documents than were read from it")


DOCUMENT_PLACES = dict(txt=txt_document_place, jsonl=jsonl_document_place, parquet=parquet_document_place)


class InputKind(NamedTuple):
    """A kind of input file: all that this script knows of it."""
    suffixes: tuple             # the file endings it is read from
    compressible: bool          # whether they may also end in a compression suffix
    check: Callable             # (Input, Config, found in a folder) -> the Input to read (bad: left
                                # out), or None to ignore it; before any work
    units: Callable             # (file index, Input, unit bytes) -> its units
    read: Callable              # (Input, Unit, Place, Cutter, Config) -> a reader (see above)
    position: Callable          # (Input, Unit, Place or None) -> where that is, for messages


KINDS = {
    "txt": InputKind((".txt",), True, check_txt, byte_units, read_txt, byte_position),
    "jsonl": InputKind((".jsonl", ".json", ".ndjson"), True, check_jsonl, byte_units, read_jsonl, byte_position),
    "parquet": InputKind((".parquet",), False, check_parquet, parquet_units, read_parquet, parquet_position),
}
SUPPORTED = ", ".join(s for k in KINDS.values() if k.compressible for s in k.suffixes) + \
    f" (each also compressed: {', '.join(COMPRESSIONS)})" + \
    "".join(f", {s}" for k in KINDS.values() if not k.compressible for s in k.suffixes)


# -----------------------------------------------------------------------------
# the inputs of a run: which files, each checked, and the units of work they make

def kind_of(path: str) -> Optional[tuple]:
    """(kind, compression suffix or ''), or None for a file this script does not read."""
    name = path.lower()
    comp = next((c for c in COMPRESSIONS if name.endswith(c)), "")
    name = name[:len(name) - len(comp)]
    for kind, rules in KINDS.items():
        if name.endswith(rules.suffixes) and (rules.compressible or not comp):
            return kind, comp
    return None


def files_in(folder, skip):
    """The files under folder this script reads, at any depth, sorted by their path relative to
    it (folder by folder, as FineWeb's own sample/10BT/000_00000.parquet...), and the links among
    them whose target is missing (an interrupted download). Symlinks to files and to folders are
    followed (the Hugging Face cache); hidden files and folders, skip, and this script's own files
    are left out."""
    found, broken, seen = [], [], {os.path.realpath(folder): folder}
    for top, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in sorted(dirs) if not d.startswith(".") and
                   os.path.realpath(os.path.join(top, d)) != skip and first_visit(os.path.join(top, d), seen)]
        rel = os.path.relpath(top, folder).split(os.sep) if top != folder else []
        for f in files:
            path = os.path.join(top, f)
            if f.startswith(".") or not kind_of(f) or is_output_name(f) or PART_NAME.fullmatch(f):
                continue
            if os.path.isfile(path):
                found.append((rel + [f], path))
            elif not os.path.exists(path):
                broken.append(path)
    return [path for _, path in sorted(found)], sorted(broken)


def first_visit(path, seen: dict) -> bool:
    """Whether the folder at path is read: each folder once (seen: its real path -> the path it is
    read at), whatever links lead to it; a link to a folder above it (a loop) or to one read
    elsewhere is not followed, with a warning."""
    real = os.path.realpath(path)
    first = seen.setdefault(real, path)
    if first is path:
        return True
    above = os.path.join(os.path.realpath(os.path.dirname(path)), "").startswith(os.path.join(real, ""))
    print(f"warning: not following {path}: it leads to {real}, " +
          ("a folder above it (a loop)" if above else f"which is read as {first}"), file=sys.stderr)
    return False


def matches_of(pattern: str, own: str) -> tuple:
    """What one --input names: (files, whether they were found in a folder, broken links)."""
    p = os.path.expanduser(pattern)
    matches = [p] if os.path.lexists(p) or not glob.has_magic(p) else sorted(glob.glob(p, recursive=True))
    if not matches:
        raise UserError(f"{p}: no file matches this pattern")
    files, in_folder, broken = [], [], []
    for m in matches:
        if os.path.isdir(m):
            found, links = files_in(m, own)
            if not found and not links:
                raise UserError(f"{m}: the folder holds no file this script reads (it reads {SUPPORTED})")
            files, in_folder, broken = files + found, in_folder + found, broken + links
        elif os.path.islink(m) and not os.path.exists(m) and kind_of(m):
            broken.append(m)
        elif os.path.exists(m):
            files.append(m)
        elif m == DEFAULT_INPUT:
            raise UserError(f"no --input given, and there is no {m}; name your files, folders or "
                            "glob patterns with --input")
        else:
            raise UserError(f"{m}: no such file or folder")
    return files, in_folder, broken


def expand_inputs(patterns, out_dir: str, skip_bad: bool) -> tuple:
    """The input files, in the order given: folders give their files (see files_in); a glob
    pattern (** for any depth) its matches, sorted, each a file or a folder. A broken link or a
    file named twice (one name in one folder, through whatever links) is refused, or with
    --skip-bad-files left out (a file named twice is read once), with a warning. Returns (the
    files, the set of those found in folders, the broken links)."""
    paths, in_folders, broken, own = [], set(), [], os.path.realpath(out_dir)
    for pattern in patterns:
        files, in_folder, links = matches_of(pattern, own)
        paths, broken = paths + files, broken + links
        in_folders.update(in_folder)
    for link in broken:
        left_out(f"{link} is a link to {os.path.realpath(link)}, which is missing (an interrupted download?)",
                 "download it again", skip_bad)
    seen = {}
    for p in paths:
        if os.path.dirname(os.path.realpath(p)) == own and is_output_name(os.path.basename(p)):
            raise UserError(f"{p} is also where this run writes its output; "
                            "choose another --out-dir or input")
        if not kind_of(p) or not os.path.isfile(p):
            raise UserError(f"{p}: not a file this script reads (it reads {SUPPORTED})")
        first = seen.setdefault(os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(p))),
                                             os.path.basename(p)), p)  # (its folder's real path, not its
        # own: the Hugging Face cache links files of the same content to one blob, each a file of the data set)
        if first is not p:
            left_out(f"{p} is the same file as {first}, named before it", "name it once", skip_bad, "read once")
    return list(seen.values()), in_folders, broken


def check_compression(path, comp):
    """Refuses at once a compressed file that is not what its name says (or that this pyarrow
    cannot decompress)."""
    if comp:
        codec, magic = COMPRESSIONS[comp]
        if codec in ("zstd", "lz4") and not arrow()[0].Codec.is_available(codec):
            raise UserError(f"{path}: this pyarrow cannot read {codec}; run: pip install -U pyarrow")
        with open(path, "rb") as f:
            head = f.read(len(magic))
        if head and head != magic:
            raise UserError(f"{path} is not a {codec} file (it does not start as one); "
                            f"rename it or compress it again")


def open_inputs(config: Config) -> list:
    """Every input, checked before any work is done or any file written. Those left out with
    --skip-bad-files (broken links included) have bad set, and no units."""
    paths, in_folders, broken = expand_inputs(config.inputs, config.out_dir, config.skip_bad_files)
    inputs = []
    for path in paths:
        kind, comp = kind_of(path)
        check_compression(path, comp)
        stat = os.stat(path)
        inp = Input(os.path.abspath(path), kind, comp, stat.st_size, stat.st_mtime_ns,
                    most=None if comp else stat.st_size + 1)
        inp = KINDS[kind].check(inp, config, path in in_folders)
        if inp is not None:
            inputs.append(inp)
    return inputs + [bad_input(Input(os.path.abspath(p), *kind_of(p), 0, 0)) for p in broken]


def plan_units(inputs: list, config: Config) -> list:
    return [u for k, inp in enumerate(inputs) if not inp.bad
            for u in KINDS[inp.kind].units(k, inp, config.unit_bytes)]


def where(inputs: list, unit: Unit, place: Optional[Place]) -> str:
    """Where in its input a unit's place is, for messages."""
    inp = inputs[unit.file]
    return f"{inp.path} at {KINDS[inp.kind].position(inp, unit, place)}"


# -----------------------------------------------------------------------------
# reading units into chunks: in parallel, by processes (or, for a small input, here)

@dataclass
class Chunk:
    """A reader's chunk of a unit: text to encode (or, in --merge, none: tokens come from a part)."""
    segments: list              # Segments
    counts: Counts
    place: Optional[Place]      # where reading stands after it (progress included); None for a
                                # chunk inside a long document: no run may stop or resume there
    finished: bool              # the unit's last chunk (then place is None)


def read_unit(inputs: list, unit: Unit, place: Optional[Place], config: Config) -> Iterator[Chunk]:
    """The chunks of one unit from place (None: its start); the last has finished set (and may
    hold nothing). A damaged input stops with a UserError, or with --skip-bad-files, leaves
    the rest of the unit out."""
    inp = inputs[unit.file]
    kind = KINDS[inp.kind]
    place = replace(place) if place else Place()
    cut = Cutter(place, config.chunk_size, config.piece_chars, config.safe_cuts)
    try:
        try:
            for progress in kind.read(inp, unit, place, cut, config):
                yield from sized_chunks(*cut.take(), config.chunk_size, replace(place, progress=progress), False)
        except STREAM_ERRORS as e:
            raise stream_error(inp, f"near {kind.position(inp, unit, place)}", e) from None
    except DamagedInput as e:
        if not config.skip_bad_files:
            raise
        print(f"warning: leaving out the rest of {inp.path} from {kind.position(inp, unit, place)}: {e.args[0]}",
              file=sys.stderr)
        cut.end_document()
        cut.counts.skipped_files.append(inp.path)
    yield from sized_chunks(*cut.take(), config.chunk_size, None, True)


def sized_chunks(segments, counts, size, place, finished):
    """segments as chunks of about size characters or more (a long document's pieces are all
    taken at once, and one chunk of them would hold its tokens at once too). Every segment ends
    at a safe or forced cut, so any of them may end a chunk. Only the last chunk carries the
    counts, place and finished: the writer neither stops nor checkpoints after the others."""
    start, chars = 0, 0
    for i, seg in enumerate(segments):
        chars += len(seg.text) + SEGMENT_CHARS
        if chars >= 2 * size and i + 1 < len(segments):
            yield Chunk(segments[start:i + 1], Counts(), None, False)
            start, chars = i + 1, 0
    yield Chunk(segments[start:], counts, place, finished)


def reader_process(inputs, units, config, jobs, chunks):
    """A reader's process: reads each unit it is given ((index, Place or None) on jobs, None to end) and
    sends (index, chunk) for each of its chunks, or (index, UserError). When the parent dies,
    the next send or receive fails and this ends too."""
    for sig in STOP_SIGNALS:  # (as at the top of this file, where this is not the main module)
        signal.signal(sig, signal.SIG_IGN)
    try:
        while (job := jobs.recv()) is not None:
            u, place = job
            try:
                for chunk in read_unit(inputs, units[u], place, config):
                    chunks.send((u, chunk))
            except UserError as e:
                chunks.send((u, e))
    except (EOFError, OSError):
        pass  # the parent is gone


class ProcessReader:
    """A reader process. It is spawned (a fresh interpreter that imports this file), as macOS
    and Windows must: forking a process that runs threads is unsafe. A reader thread would hold
    the GIL that the encoding threads need between calls: on 2 cores that made a run ~1.5x slower."""

    def __init__(self, inputs, units, config):
        self.inputs, self.units, self.reading = inputs, units, None
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_chunks = ctx.Pipe(duplex=False)
        child_jobs, self.jobs = ctx.Pipe(duplex=False)
        if hasattr(fcntl, "F_SETPIPE_SZ"):  # Linux: a chunk in one write, not 64 KiB at a time
            try:
                fcntl.fcntl(child_chunks.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            except OSError:
                pass  # a lower /proc/sys/fs/pipe-max-size: the default pipe is slower, not wrong
        self.proc = ctx.Process(target=reader_process, daemon=True,
                                args=(inputs, units, config, child_jobs, child_chunks))
        handlers = [signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS]
        try:  # (ignored signals stay ignored in the new process until it ignores them itself)
            self.proc.start()
        finally:
            for sig, handler in zip(STOP_SIGNALS, handlers):
                signal.signal(sig, handler)
        child_chunks.close()
        child_jobs.close()

    def start(self, u, place):
        try:
            self.jobs.send((u, place))
        except OSError:  # (it ended between units)
            self.reading = None
            raise self.ended() from None
        self.reading = (u, place)

    def recv(self):
        try:
            return self.conn.recv()
        except (EOFError, OSError):  # (OSError: it ended in the middle of a message)
            raise self.ended() from None

    def ended(self) -> UserError:
        """The error for a reader process that ended while reading: which, how, and that the run
        continues (the out-of-memory killer of Linux sends SIGKILL; a Python error in the
        reader is printed by it, and it exits with code 1)."""
        self.proc.join(5)
        code = self.proc.exitcode
        if code is None:
            how = "stopped answering"
        elif code < 0:
            name = next((s.name for s in signal.Signals if s == -code), f"signal {-code}")
            how = f"was killed by {name}" + (", most likely by the system for lack of memory (fewer --workers "
                                             "or a smaller --chunk-size need less)" if name == "SIGKILL" else "")
        else:
            how = f"ended with exit code {code}" + (" (its error is printed above)" if code else "")
        if self.reading:
            unit = self.units[self.reading[0]]
            inp = self.inputs[unit.file]
            doing = f"reading {inp.path} from {KINDS[inp.kind].position(inp, unit, self.reading[1])}"
        else:
            doing = "between units"
        return UserError(f"the reader process {self.proc.pid} ({doing}) {how}; work done so far is kept: "
                         "run the same command to continue")

    def close(self):
        self.proc.kill()
        self.proc.join()
        self.conn.close()
        self.jobs.close()


class LocalReader:
    """Reads in this process (for an input under Config.small_input): the same chunks, no process."""
    conn = None

    def __init__(self, inputs, units, config):
        self.inputs, self.units, self.config, self.chunks = inputs, units, config, None

    def start(self, u, place):
        self.u, self.chunks = u, read_unit(self.inputs, self.units[u], place, self.config)

    def recv(self):
        try:
            return self.u, next(self.chunks)
        except UserError as e:
            return self.u, e

    def close(self):
        pass


# -----------------------------------------------------------------------------
# tokens: a tokenizer is tiktoken's (a built-in encoding, a BPE file, or a tokenizer.json that
# tiktoken runs exactly) or, for any other tokenizer.json, Hugging Face tokenizers'

# The pre-tokenizer patterns for which a safe cut (see SAFE_CUT) is proven, besides tiktoken's
# built-in encodings': no alternative matches across a letter or digit followed by whitespace,
# and none looks behind (tests/test_tokenizers.py checks each against one-shot encodings).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
SAFE_PATTERNS = {GPT2_PATTERN, LLAMA3_PATTERN, QWEN2_PATTERN}
# Llama 3, 3.1, 3.2: tokenizer.model holds 128,000 ranks; Meta's code adds 256 special tokens
LLAMA3_RANKS = 128_000
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                   "<|reserved_special_token_1|>", "<|reserved_special_token_2|>", "<|reserved_special_token_3|>",
                   "<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_4|>", "<|eot_id|>"] + \
    [f"<|reserved_special_token_{i}|>" for i in range(5, 251)]
# the token that separates documents, by default: the first of these the tokenizer has (GPT-2's
# family and most BPEs; Llama 3, as llm.c writes it; SentencePiece's end of sentence)
DOC_TOKENS = ("<|endoftext|>", "<|begin_of_text|>", "</s>")
SPECIALS_SHOWN = 8              # special tokens named in the error of a --doc-token that is none
# a tokenizer.json is run by tiktoken only when it encodes this, and each of its tokens' text,
# as `tokenizers` does (besides the tests' proof for its family); else through `tokenizers`
SAMPLE = ("Hello world! It's 2024: naïve café, ÉCOLE, cafe\u0301 \u1100\u1161, 中文字符 and 日本語 🙂👍🏽.\n\n  def f(x):\n\treturn "
          "x**2 + 1234567 # don't\r\n<|endoftext|> 'll 've \u3000 \xa0 end   \n\n\n spaces    ")
# the constructs of a Split regex that mean the same in tokenizers' Oniguruma and tiktoken's
# fancy-regex (an allow-list: any other, such as ^ $ . \b \w \d, a lazy or possessive quantifier,
# a look-behind, a flag but (?i: around ASCII letters, a nested class or a class operation, keeps
# the file on tokenizers). Their general categories' tables agreed for every code point in
# tokenizers 0.23 and tiktoken 0.14; Unicode versions apart, they may differ for new characters.
REGEX_CATEGORY = r"\\[pP]\{(?:[LMNPSZ]|L[ultmo]|M[nce]|N[dlo]|P[cdseifo]|S[mcko]|Z[slp])\}"
REGEX_CHAR = r"\\[rnt]|\\[!-/:;=?@\[-`{-~]"  # (escaped ASCII punctuation but \< \>: word bounds in fancy-regex)
REGEX_CLASS_ITEM = rf"(?:{REGEX_CHAR}|[^\\\[\]\-&~^])(?:-(?:{REGEX_CHAR}|[^\\\[\]\-&~^]))?|\\[sS]|{REGEX_CATEGORY}"
REGEX_TOKEN = re.compile(rf"""(?P<atom>\[\^?(?:{REGEX_CLASS_ITEM})+\]|\\[sS]|{REGEX_CATEGORY}|(?P<char>{REGEX_CHAR}|
                                [^\\^$.|?*+()\[\]{{}}]))|(?P<open>\((?:\?[:=!]|(?P<nocase>\?i:))?)|(?P<close>\))|
                                (?P<alt>\|)|(?P<quantifier>[?*+]|\{{\d+(?:,\d*)?\}})""", re.X)
# Unicode's White_Space characters (what \s matches in both engines) and general categories
WHITESPACE_CHARS = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
GENERAL_CATEGORIES = "Lu Ll Lt Lm Lo Mn Mc Me Nd Nl No Pc Pd Ps Pe Pi Pf Po Sm Sc Sk So Zs Zl Zp Cc Cf Cs Co Cn".split()
# the planes of Unicode's combining marks and canonical decompositions (and CJK compatibility
# ideographs' supplement, tags and variation selectors): where two NFC tables may differ
NFC_PROBE_RANGES = [(0, 0xD800), (0xE000, 0x20000), (0x2F800, 0x2FA20), (0xE0000, 0xE1000)]


def tiktoken_missing_cache(name, e):
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR") or \
        os.path.join(tempfile.gettempdir(), "data-gym-cache")  # (where tiktoken keeps it)
    return UserError(f"could not load the '{name}' vocabulary ({type(e).__name__}): tiktoken downloads it "
                     f"once and keeps it in {cache}; on a machine without internet, copy that cache folder "
                     "from a machine that has run this, and set TIKTOKEN_CACHE_DIR to it (see "
                     "docs/offline.md), or give the vocabulary's file with --tokenizer")


def not_special(doc_text: str, tokenizer: str, specials: list) -> UserError:
    """--doc-token naming no special token: the error, with the tokenizer's special tokens."""
    shown = ", ".join(specials[:SPECIALS_SHOWN]) + (f", ... ({len(specials):,} in all)"
                                                     if len(specials) > SPECIALS_SHOWN else "")
    its = "its special token is" if len(specials) == 1 else "its special tokens are"
    return UserError(f"--doc-token {doc_text!r} is not a special token of {tokenizer}; {its} {shown}: "
                     "give one of them, or leave --doc-token out for the default")


class TiktokenTokenizer:
    """A tiktoken Encoding. Documents are joined by the document token's text, allowed as that
    token alone, and encoded in one call (tiktoken encodes the text between special tokens on
    its own: the same tokens as one call per document)."""

    def __init__(self, enc, doc_text: str, name: str, about: dict, safe_cuts: bool, normal: Optional[str] = None,
                 unlike: Optional[tuple] = None):
        if doc_text not in enc._special_tokens:
            raise not_special(doc_text, about.get("encoding") or about["file"], list(enc._special_tokens))
        self.enc, self.doc_text, self.doc_token = enc, doc_text, enc._special_tokens[doc_text]
        self.name, self.about, self.safe_cuts, self.n_vocab = name, about, safe_cuts, enc.n_vocab
        self.normal = normal  # a Unicode normal form the text is put in first (a tokenizer.json's normalizer)
        # (characters whose NFC differs in Python's and tokenizers' tables, tokenizers' NFC): see nfc_unlike
        self.unlike = unlike
        # documents are joined by the token's text only where its occurrences cannot overlap
        # (no proper prefix of it is also its suffix): then counting them finds each join
        self.joinable = not any(doc_text[:k] == doc_text[-k:] for k in range(1, len(doc_text)))

    def normalized(self, segments: list) -> list:
        """Each segment in the normal form: the same as the whole text's where segments end at
        safe cuts (whitespace composes with nothing, and starts a new combining sequence)."""
        return [seg if text is seg.text else seg._replace(text=text)
                for seg, text in zip(segments, map(self.normal_form, (seg.text for seg in segments)))]

    def normal_form(self, text: str) -> str:
        """text in the normal form: by Python's tables, or by the file's own NFC where text holds
        a character their Unicode versions treat otherwise (~100x slower; rare characters)."""
        if self.unlike and not text.isascii() and holds_any(text, self.unlike[0]):
            return self.unlike[1](text)
        return text if unicodedata.is_normalized(self.normal, text) else unicodedata.normalize(self.normal, text)

    def encode_chunk(self, segments: list, dtype) -> tuple:
        """Token ids of a chunk's segments, where pieces end other than at a document token
        (token positions), how many cuts were forced, and which of a document's own tokens have
        the document token's id (none: tiktoken makes no special token of text): (tokens, cuts,
        forced, own)."""
        enc, doc = thread_encoding(self.enc), self.doc_text
        parts, cuts, forced = [], [], 0
        for run in runs_to_piece_ends(self.normalized(segments) if self.normal else segments):
            text = "".join(seg.text + doc if seg.ends_document else seg.text for seg in run)
            if self.joinable and text.count(doc) == sum(seg.ends_document for seg in run):
                calls = [(text, {doc}, False)]
            else:  # a document holds the token's text: encode one by one
                calls = [(seg.text, (), seg.ends_document) for seg in run]
            for t, allowed, doc_after in calls:
                tokens, n = encode_text(enc, t, allowed)
                parts.append(tokens)
                forced += n
                if doc_after:
                    parts.append(np.array([self.doc_token], dtype=np.uint32))
            if run[-1].ends_piece and not run[-1].ends_document:
                cuts.append(sum(len(p) for p in parts))
        tokens = np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype)
        return tokens, cuts, forced, ()

    def decode(self, ids: list) -> str:
        return self.enc.decode(ids)


class HuggingFaceTokenizer:
    """A tokenizer.json that tiktoken cannot run exactly, through Hugging Face tokenizers: each
    piece of text in a call of its own (a batch per chunk, without offsets where this version
    can), special-token text as text. Its cuts are not proven safe: documents are cut only where
    they must be (forced cuts)."""
    safe_cuts = False

    def __init__(self, tok, doc_text: str, name: str, about: dict):
        tok.encode_special_tokens = True  # (special-token text in a document stays text)
        self.tok, self.doc_text, self.doc_token = tok, doc_text, tok.token_to_id(doc_text)
        self.encode_batch = getattr(tok, "encode_batch_fast", tok.encode_batch)
        self.name, self.about = name, about
        self.n_vocab = max(tok.get_vocab(with_added_tokens=True).values()) + 1

    def encode_chunk(self, segments: list, dtype) -> tuple:
        """As TiktokenTokenizer's; a document's own text may encode to the document token's id
        (Unigram's '</s>' may also be an ordinary piece): those tokens are its own."""
        runs = list(runs_to_piece_ends(segments, at_documents=True))
        texts = ["".join(seg.text for seg in run) for run in runs]
        ids, cuts, ends = [], [], []  # (tokenizers gives lists: one array of them all at the end)
        for encoding, run in zip(self.encode_batch(texts, add_special_tokens=False), runs):
            ids += encoding.ids
            if run[-1].ends_document:
                ends.append(len(ids))
                ids.append(self.doc_token)
            elif run[-1].ends_piece:
                cuts.append(len(ids))
        tokens = np.array(ids, dtype=dtype)
        own = np.flatnonzero(tokens == self.doc_token)
        return tokens, cuts, 0, tuple(np.setdiff1d(own, ends).tolist()) if len(own) > len(ends) else ()

    def decode(self, ids: list) -> str:
        return self.tok.decode(ids, skip_special_tokens=False)


def load_tokenizer(config: Config):
    """The tokenizer of --tokenizer (a file) or --encoding (tiktoken's name; gpt2 by default)."""
    if config.tokenizer is None:
        return builtin_tokenizer(config.encoding or "gpt2", config.doc_token)
    path = config.tokenizer
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UserError(f"cannot read --tokenizer {path} ({e.strerror})") from None
    about = dict(file=os.path.abspath(path), sha256=hashlib.sha256(data).hexdigest())
    name = f"{about['file']} (sha256 {about['sha256'][:16]}...)"
    if path.lower().endswith(".json"):
        return json_tokenizer(data, config, name, about)
    return bpe_file_tokenizer(data, config, name, about)


def builtin_tokenizer(name: str, doc_text: Optional[str]) -> TiktokenTokenizer:
    if name not in tiktoken.list_encoding_names():
        raise UserError(f"unknown --encoding '{name}'; valid names: {', '.join(tiktoken.list_encoding_names())} "
                        "(or give a tokenizer's file with --tokenizer)")
    if name in ("gpt2", "r50k_base"):
        enc = shipped_gpt2(name)
    else:
        try:
            enc = tiktoken.get_encoding(name)
        except Exception as e:  # tiktoken raises whatever its download raised
            raise tiktoken_missing_cache(name, e) from None
    default = next((t for t in DOC_TOKENS if t in enc._special_tokens), MARKER)
    doc = doc_text or default  # (the name says a --doc-token other than the default: the bytes differ)
    return TiktokenTokenizer(enc, doc, name if doc == default else f"{name} ({doc})", dict(encoding=name), True)


def shipped_gpt2(name: str):
    """gpt2 or r50k_base (the same ranks, pattern and <|endoftext|> 50256) from the ranks file
    that ships with this script, whatever tiktoken's cache holds: no download, ever."""
    try:
        with open(GPT2_RANKS, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UserError(f"cannot read {GPT2_RANKS} ({e.strerror}), the GPT-2 vocabulary that comes with this "
                        "script: copy the whole folder it came in, not prepare.py alone") from None
    if hashlib.sha256(data).hexdigest() != GPT2_RANKS_SHA256:
        raise UserError(f"{GPT2_RANKS} is damaged (its sha256 is not GPT-2's): copy it again from the project")
    from tiktoken_ext import openai_public  # (its pattern; tiktoken before 0.6 wrote it out inline)
    return tiktoken.Encoding(name, pat_str=getattr(openai_public, "r50k_pat_str", GPT2_PATTERN),
                             mergeable_ranks=read_ranks(data, GPT2_RANKS),
                             special_tokens={MARKER: 50256}, explicit_n_vocab=50257)


def read_ranks(data: bytes, path: str) -> dict:
    """A tiktoken BPE file's ranks: one 'base64-token rank' per line."""
    ranks = {}
    for number, line in enumerate(data.splitlines(), 1):
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except (ValueError, binascii.Error):
            if line.strip():
                raise UserError(f"{path}: line {number:,} is not 'base64-token rank': not a tiktoken "
                                "BPE file (a Hugging Face tokenizer is read from its tokenizer.json)") from None
    check_ranks(ranks, path)
    return ranks


def bpe_file_tokenizer(data: bytes, config: Config, name: str, about: dict) -> TiktokenTokenizer:
    """A tiktoken BPE file (one 'base64-token rank' per line: *.tiktoken, Llama 3's
    tokenizer.model). Llama 3's (128,000 ranks) gets Meta's pattern and special tokens; another
    gets --tokenizer-pattern, and its document token right after its ranks."""
    ranks = read_ranks(data, config.tokenizer)
    if len(ranks) == LLAMA3_RANKS and config.tokenizer_pattern is None:
        pattern, specials = LLAMA3_PATTERN, {t: LLAMA3_RANKS + i for i, t in enumerate(LLAMA3_SPECIALS)}
        doc = config.doc_token or "<|begin_of_text|>"
    elif config.tokenizer_pattern is None:
        raise UserError(f"{config.tokenizer} is a tiktoken BPE file of {len(ranks):,} ranks, not Llama 3's "
                        "(128,000): give its pre-tokenizer regex with --tokenizer-pattern (GPT-2's and "
                        "Llama 3's are in docs/tokenizers.md)")
    else:
        pattern, doc = config.tokenizer_pattern, config.doc_token or MARKER
        specials = {doc: max(ranks.values()) + 1}
    try:
        enc = tiktoken.Encoding(os.path.basename(config.tokenizer), pat_str=pattern, mergeable_ranks=ranks,
                                special_tokens=specials)
    except ValueError as e:  # (the pattern)
        raise UserError(f"--tokenizer-pattern is not a regex tiktoken can run ({e})") from None
    return TiktokenTokenizer(enc, doc, name, dict(about, runs_as="tiktoken"), pattern in SAFE_PATTERNS)


def check_ranks(ranks: dict, path: str):
    """What tiktoken needs of a BPE file (else it panics): tokens, one rank each, every byte."""
    if not ranks:
        raise UserError(f"{path} holds no token: not a tiktoken BPE file")
    if len(set(ranks.values())) < len(ranks):
        raise UserError(f"{path}: two tokens have the same rank; not a tiktoken BPE file")
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise UserError(f"{path} has no token for {len(missing)} of the 256 bytes (byte {missing[0]:#04x} the "
                        "first): tiktoken needs each byte as a token")


def json_tokenizer(data: bytes, config: Config, name: str, about: dict):
    """A Hugging Face tokenizer.json: as a tiktoken Encoding where it is a byte-level BPE that
    tiktoken runs exactly (see tiktoken_parts), else through `tokenizers`."""
    # the encoding threads are the parallelism: tokenizers' own threads in each call made a run
    # ~1.7x slower here (set before its first use)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        spec = json.loads(data)
        tokenizers = importlib.import_module("tokenizers")
        whole, ignored = without_batch_settings(spec, config.tokenizer)
        tok = tokenizers.Tokenizer.from_str(json.dumps(whole) if ignored else data.decode("utf-8"))
        spec, about = whole, dict(about, ignored=ignored) if ignored else about
    except ImportError:
        raise UserError(f"{config.tokenizer} is a Hugging Face tokenizer, read with its 'tokenizers' "
                        "package, which is not installed; run: pip install tokenizers") from None
    except Exception as e:  # (tokenizers raises its own kinds)
        raise UserError(f"{config.tokenizer} is not a tokenizer.json that Hugging Face tokenizers reads "
                        f"({str(e)[:200]})") from None
    if not hasattr(tok, "encode_special_tokens"):
        raise UserError("this version of tokenizers cannot encode special-token text as text; "
                        "run: pip install -U tokenizers")
    special = [t["content"] for t in spec.get("added_tokens", []) if t.get("special")]
    doc = config.doc_token or next((t for t in DOC_TOKENS if t in special), None)
    if doc not in special:  # (an added token that is not special is text a document may hold)
        raise UserError(f"{config.tokenizer} has no special token {repr(doc) if doc else ' or '.join(DOC_TOKENS)} "
                        f"to separate documents (its special tokens: {', '.join(special[:8]) or 'none'}); "
                        "name one with --doc-token")
    tok.encode_special_tokens = True
    parts = tiktoken_parts(spec)
    enc = parts and tiktoken_encoding(os.path.basename(config.tokenizer), parts)
    if enc:
        runner = TiktokenTokenizer(enc, doc, name, dict(about, runs_as="tiktoken"), parts[1] in SAFE_PATTERNS,
                                   parts[3], parts[3] and nfc_unlike())
        if runs_alike(enc, tok, parts[0], runner.normal_form if parts[3] else None):
            return runner
    return HuggingFaceTokenizer(tok, doc, name, dict(about, runs_as="tokenizers"))


def without_batch_settings(spec: dict, path: str) -> tuple:
    """spec without what a tokenizer.json may be saved with for batches of model inputs, said
    in one warning: padding (pad ids between documents), truncation (documents cut short) and
    BPE dropout (random merges), and the names of those it had. Each document is encoded whole,
    and the same in every run."""
    model = spec.get("model") or {}
    found = [name for name, on in (("padding", spec.get("padding")), ("truncation", spec.get("truncation")),
                                   ("BPE dropout", model.get("dropout"))) if on]
    if not found:
        return spec, found
    print(f"warning: {path} is saved with {' and '.join(found)}, which this script ignores: each document is "
          "encoded whole, and the same in every run", file=sys.stderr)
    model = dict(model, dropout=None) if "dropout" in model else model
    return dict(spec, padding=None, truncation=None, model=model), found


def tiktoken_encoding(name: str, parts: tuple):
    """A tiktoken Encoding of tiktoken_parts' answer; None where tiktoken cannot run its regex."""
    ranks, pattern, specials, _ = parts
    try:
        return tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)
    except ValueError:
        return None


def runs_alike(enc, tok, ranks: dict, normal_form: Optional[Callable]) -> bool:
    """Whether tiktoken gives the ids tokenizers gives, on SAMPLE and on the text of every token
    (tiktoken takes a whole piece that is a token, and merges any pair whose bytes are a token;
    tokenizers may do neither: ~1 s for Llama 3's 128,000 tokens), merges alike on every token's
    bytes (merges_alike); normal_form: the text's normalization (TiktokenTokenizer.normal_form)."""
    if not merges_alike(tok, ranks):
        return False
    texts = [SAMPLE]
    for token in ranks:
        try:
            texts.append(token.decode("utf-8"))
        except UnicodeDecodeError:
            continue  # (a part of a character)
    want = [e.ids for e in getattr(tok, "encode_batch_fast", tok.encode_batch)(texts, add_special_tokens=False)]
    texts = [normal_form(t) for t in texts] if normal_form else texts
    return all(enc.encode(t, disallowed_special=()) == ids for t, ids in zip(texts, want))


def holds_any(text: str, chars: frozenset) -> bool:
    """Whether text holds one of chars (a hundred or so): by the set in a short text, else by a
    search for each (str's fast search: ~2 ms a million characters; the two cost alike at ~400)."""
    return not chars.isdisjoint(text) if len(text) < 400 else any(c in text for c in chars)


def merges_alike(tok, ranks: dict) -> bool:
    """Whether tiktoken's merges (of any two neighbours whose bytes are a token, by rank) make
    what tokenizers' merges make, in every text. Where the two first differ, tiktoken merges two
    neighbours into a token tokenizers has no merge for, after merges within that token's
    bytes, which happen so in its bytes alone: tokenizers' merges (without taking a whole word
    that is a token, ignore_merges) then leave the token's bytes as those two parts. So no
    token's bytes may end as exactly two parts, be they valid UTF-8 or part of a character (e.g.
    'é' is c3 a9, a token a9 c3 then c3 a9 c3 from c3a9 + c3 gives [c3, a9c3] alone, and
    tiktoken [c3a9c3, a9] on 'éé' where tokenizers gives [c3, a9c3, a9]). (Merges that make one
    token, met where they overlap, are taken in rank order by tokenizers and from the left by
    tiktoken: not compared here.)"""
    model, alphabet = tok.model, {b: c for c, b in byte_level_alphabet().items()}
    words = ["".join(alphabet[token[i:i + 1]] for i in range(len(token))) for token in ranks]
    whole = getattr(model, "ignore_merges", False)  # (tokenizers 0.19 and later)
    bare = type(tok)(model)  # (no normalizer, no pre-tokenizer: each word is one; the model is shared)
    if whole:
        model.ignore_merges = False
    try:
        parts = getattr(bare, "encode_batch_fast", bare.encode_batch)(words, add_special_tokens=False)
    finally:
        if whole:
            model.ignore_merges = True
    return all(len(p.ids) != 2 for p in parts)


def nfc_unlike() -> Optional[tuple]:
    """(them, tokenizers' NFC) for the characters whose NFC in tokenizers'
    tables differs from Python's (their Unicode versions differ: 99 in tokenizers 0.23, whose
    tables predate Unicode 11, against Python 3.11's Unicode 14), or None. NFC is made from each
    character's combining class and decomposition: tokenizers' NFD and Python's are compared on
    each character of NFC_PROBE_RANGES after U+0345 (the highest class: a character of another
    goes before it), each in a line of its own; a differing one's parts count too. ~50 ms."""
    from tokenizers.normalizers import NFC, NFD
    codes = np.concatenate([np.arange(lo, hi, dtype="<u4") for lo, hi in NFC_PROBE_RANGES])
    codes = codes[codes != ord("\n")]
    probe = np.full((len(codes), 3), [0x345, 0, ord("\n")], dtype="<u4")
    probe[:, 1] = codes
    text, nfd = probe.tobytes().decode("utf-32-le"), NFD().normalize_str
    theirs, ours = nfd(text), unicodedata.normalize("NFD", text)
    if theirs == ours:
        return None
    unlike = {chr(c) for c, a, b in zip(codes.tolist(), theirs.split("\n"), ours.split("\n")) if a != b}
    unlike |= {part for c in unlike for part in nfd(c) + unicodedata.normalize("NFD", c)}
    return frozenset(unlike), NFC().normalize_str


def regex_alike(pattern: str) -> bool:
    """Whether a Split regex is made only of constructs that mean the same in tokenizers'
    Oniguruma and tiktoken's fancy-regex (REGEX_TOKEN: e.g. '$' is the end of a line in the one,
    of the text in the other), (?i: only around characters that are not letters, or ASCII; and
    matches every character (regex_covers)."""
    pos, nocase, last = 0, [], "alt"
    # each open group's alternatives (the pattern's first), each alternative's items: [the atom's
    # text, or None for a group; how often it must match at least; whether it takes a character]
    groups, looks = [[[]]], [False]
    while pos < len(pattern):
        m = REGEX_TOKEN.match(pattern, pos)
        if m is None:
            return False
        kind, pos = m.lastgroup if m.lastgroup in ("open", "close", "alt", "quantifier") else "atom", m.end()
        if kind == "quantifier" and last not in ("atom", "close") or kind == "close" and not nocase:
            return False  # (a lazy or possessive quantifier, or an unbalanced parenthesis)
        if True in nocase and kind == "atom" and not (m.group("char") and (m.group().isascii() or
                                                                           not m.group()[-1].isalpha())):
            return False
        if kind == "alt":
            groups[-1].append([])
        elif kind == "atom":
            groups[-1][-1].append([m.group(), 1, True])
        elif kind == "quantifier":  # (of the last atom or group)
            groups[-1][-1][-1][1] = 1 if m.group() == "+" else int(re.sub(r"\D.*", "", m.group()[1:]) or 0)
        elif kind == "open":
            nocase.append(bool(m.group("nocase")) or True in nocase[-1:])
            groups.append([[]])
            looks.append(m.group() in ("(?=", "(?!"))
        else:  # (a group takes a character where each of its alternatives needs an item that does)
            nocase.pop()
            alternatives, look = groups.pop(), looks.pop()
            groups[-1][-1].append([None, 1, not look and all(any(a[1] and a[2] for a in alt) for alt in alternatives)])
        last = kind
    return not nocase and regex_covers(groups[0])


def regex_covers(alternatives: list) -> bool:
    """Whether a match starts at every character (tiktoken leaves out text no match takes,
    tokenizers keeps it as a piece of its own), alternatives: the top ones' items (regex_alike).
    Shown where no alternative matches empty text (each needs an item that takes a character),
    and each kind of character is in the atom of an alternative that needs that atom once and
    nothing else: at such a character it matches. The kinds: each general category (of the
    characters the pattern does not name, whitespace apart), each whitespace character, each
    character the pattern names; a range makes a kind's membership unknown: not shown."""
    needed = [[a for a in alt if a[1]] for alt in alternatives]
    sure = [atoms[0][0] for atoms in needed if len(atoms) == 1 and atoms[0][1] == 1 and atoms[0][0] is not None]
    named = {regex_char(c) for atom in sure for c in re.findall(REGEX_CHAR + r"|[^\\]", atom)} | set(WHITESPACE_CHARS)
    kinds = [(unicodedata.category(c), c) for c in named] + [(cat, None) for cat in GENERAL_CATEGORIES]
    return all(any(a[2] for a in atoms) for atoms in needed) and \
        all(any(regex_member(atom, kind) for atom in sure) for kind in kinds)


def regex_char(text: str) -> str:
    """The character of REGEX_CHAR's text (or of a character itself)."""
    return {"\\r": "\r", "\\n": "\n", "\\t": "\t"}.get(text, text[-1])


def regex_member(atom: str, kind: tuple) -> Optional[bool]:
    """Whether a character of kind (its general category, and itself, or None for one the
    pattern does not name) is in an atom of REGEX_TOKEN; None where it may or may not be (a range)."""
    category, char = kind
    if atom[:1] == "[":
        items = [regex_member(m.group(), kind) for m in re.finditer(REGEX_CLASS_ITEM, atom[2 if atom[1] == "^" else 1:-1])]
        inside = True if True in items else None if None in items else False
        return inside if atom[1] != "^" or inside is None else not inside
    if atom in ("\\s", "\\S"):
        return (char is not None and char in WHITESPACE_CHARS) == (atom == "\\s")
    if atom[:2] in ("\\p", "\\P"):
        name = atom[3:-1]
        return (category == name or len(name) == 1 and category[0] == name) == (atom[1] == "p")
    ends = [regex_char(e) for e in re.findall(REGEX_CHAR + r"|[^\\]", atom)]
    if len(ends) == 3:  # (a range: of characters not named, it may hold some)
        return None if char is None else ends[0] <= char <= ends[2]
    return char == ends[0]


def byte_level_alphabet() -> dict:
    """GPT-2's byte-level alphabet: the character that stands for each byte in a vocabulary."""
    shown = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in shown]
    return {chr(c): bytes([c]) for c in shown} | {chr(256 + i): bytes([b]) for i, b in enumerate(others)}


def tiktoken_parts(spec: dict) -> Optional[tuple]:
    """(mergeable ranks, pattern, special tokens, Unicode normal form or None) of a
    tokenizer.json that tiktoken runs as `tokenizers` does, else None: a byte-level BPE (no
    normalizer but NFC, as Qwen2's; no byte fallback, no subword prefixes) whose
    pre-tokenizer is GPT-2's ByteLevel regex, or one Split regex then ByteLevel; whose merges
    make tokens in the order of their ids (tiktoken merges by rank); whose added tokens are all
    special."""
    model, normalizer = spec.get("model") or {}, spec.get("normalizer")
    added = spec.get("added_tokens", [])
    pattern = byte_level_pattern(spec.get("pre_tokenizer") or {})
    if normalizer not in (None, {"type": "NFC"}) or pattern is None or not all(t.get("special") for t in added) or \
            model.get("type") != "BPE" or any(model.get(k) for k in ("byte_fallback", "continuing_subword_prefix",
                                                                     "end_of_word_suffix", "dropout")):
        return None
    specials = {t["content"]: t["id"] for t in added}
    ranks = byte_level_ranks(model, set(specials.values()))
    if ranks is None or any(bytes([b]) not in ranks for b in range(256)):  # (tiktoken needs every byte)
        return None
    return ranks, pattern, specials, normalizer and "NFC"


def byte_level_pattern(pre: dict) -> Optional[str]:
    """The regex of a byte-level pre-tokenizer that tiktoken can run: GPT-2's ByteLevel, or one
    Split regex (isolated) then ByteLevel without its regex; None for any other."""
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    if not steps or steps[-1].get("type") != "ByteLevel" or steps[-1].get("add_prefix_space"):
        return None
    if len(steps) == 1 and steps[0].get("use_regex", True):
        return GPT2_PATTERN
    split = steps[0]
    if len(steps) == 2 and split.get("type") == "Split" and split.get("behavior") == "Isolated" and \
            not split.get("invert") and "Regex" in split.get("pattern", {}) and not steps[1].get("use_regex", True) \
            and regex_alike(split["pattern"]["Regex"]):
        return split["pattern"]["Regex"]
    return None


def byte_level_ranks(model: dict, special_ids: set) -> Optional[dict]:
    """A byte-level BPE's vocabulary as tiktoken's ranks (bytes -> id), without the special
    tokens (GPT-2's files also hold <|endoftext|> in it); None unless its merges make tokens in
    the order of their ids."""
    vocab = {token: rank for token, rank in model["vocab"].items() if rank not in special_ids}
    alphabet = byte_level_alphabet()
    try:
        ranks = {b"".join(alphabet[c] for c in token): rank for token, rank in vocab.items()}
    except KeyError:
        return None  # (a token outside the byte-level alphabet)
    merges = [m.split(" ") if isinstance(m, str) else m for m in model.get("merges", [])]
    made = [vocab.get(a + b, -1) for a, b in merges]
    return ranks if len(ranks) == len(vocab) and made == sorted(made) and -1 not in made else None


_local, _taken, _taking = threading.local(), set(), threading.Lock()


def thread_encoding(enc):
    """Each worker thread's own Encoding (threads sharing one slow each other down: ~1.3x more
    CPU per token): the first thread takes enc itself, the others a copy (~10 MiB each)."""
    if getattr(_local, "of", None) is not enc:
        with _taking:
            first = id(enc) not in _taken
            _taken.add(id(enc))
        _local.of, _local.enc = enc, enc if first else tiktoken.Encoding(
            enc.name, pat_str=enc._pat_str, mergeable_ranks=enc._mergeable_ranks, special_tokens=enc._special_tokens)
    return _local.enc


@functools.lru_cache(maxsize=None)
def installed(name):
    """The version of an installed package, as a tuple; None when pip does not know it."""
    try:
        return version_tuple(version(name))
    except PackageNotFoundError:
        return None


def encode_array(enc, text, allowed=()):
    """Token ids of text as a uint32 array; special tokens' text is ordinary text, except the
    allowed ones. encode_to_numpy where it keeps allowed_special (tiktoken 0.11+: 0.9 and 0.10
    allow every special token); before, a list, converted (slower, the same tokens)."""
    try:
        if (installed("tiktoken") or (99,)) >= (0, 11, 0):
            return enc.encode_to_numpy(text, allowed_special=set(allowed), disallowed_special=())
        return np.array(enc.encode(text, allowed_special=set(allowed), disallowed_special=()), dtype=np.uint32)
    except ValueError as e:  # its regex engine's backtracking limit (a look-around over a very long word)
        raise EncodeFailed(str(e)) from None
    except BaseException as e:  # a panic in tiktoken's Rust code is pyo3's PanicException, a BaseException
        if not isinstance(e, RuntimeError) and type(e).__name__ != "PanicException":
            raise
        if (installed("tiktoken") or (99,)) < (0, 8, 0):  # (its stack overflows on a very long word)
            raise UserError(f"tiktoken {version('tiktoken')} failed on the text ({e}): versions before 0.8 fail "
                            "on runs of a million characters without whitespace; run: pip install -U tiktoken") from None
        raise EncodeFailed(f"tiktoken failed: {e}") from None


def long_space_cuts(text):
    """Where text is cut so that no whitespace run that tiktoken gets is longer than LONG_SPACE:
    inside each longer run, every LONG_SPACE characters from its start (forced cuts; tiktoken's
    regex fails on runs of about a million). Such a run holds a character at a multiple of
    LONG_SPACE // 2 within LONG_SPACE // 2 of its start, so only those characters are looked at."""
    cuts, step, end = [], LONG_SPACE // 2, 0
    for k in range(step, len(text), step):
        if k < end or not text[k].isspace():
            continue
        start, end = k, WHITESPACE.match(text, k).end()
        while start > 0 and text[start - 1].isspace():
            start -= 1
        cuts += range(start + LONG_SPACE, end, LONG_SPACE)
    return cuts


def encode_text(enc, text, allowed=()):
    """encode_array of text, in parts where long_space_cuts cuts it; and how many cuts."""
    cuts = long_space_cuts(text)
    if not cuts:
        return encode_array(enc, text, allowed), 0
    parts = [text[lo:hi] for lo, hi in zip([0, *cuts], [*cuts, len(text)])]
    return np.concatenate([encode_array(enc, part, allowed) for part in parts]), len(cuts)


def runs_to_piece_ends(segments, at_documents=False):
    """segments grouped into runs, each ending at a piece end that is not a document end (or,
    at_documents, at any piece end)."""
    run = []
    for seg in segments:
        run.append(seg)
        if seg.ends_piece and (at_documents or not seg.ends_document):
            yield run
            run = []
    if run:
        yield run


class Encoded(NamedTuple):
    """A chunk's tokens, in input order: what the writer (or a shard's parts) takes."""
    unit: int                   # its unit's index
    tokens: object              # numpy array, EOT after each document
    cuts: list                  # where pieces end other than after an EOT (token positions)
    chunk: Chunk
    own: tuple = ()             # tokens of a document's own text with the EOT's id: no document end


class Scheduler:
    """Hands the units todo to readers in order, and gives back their encoded chunks in order.
    A reader's chunks are taken while the chunks in flight are fewer than the window, and the
    oldest unit's always: memory is bounded by the window, not by the units' sizes."""

    def __init__(self, readers, pool, encode, todo, place, window):
        self.readers, self.pool, self.encode, self.todo, self.place = readers, pool, encode, todo, place
        self.window, self.head = window, 0   # todo[head] is the unit being written
        self.queues, self.busy, self.idle, self.assign = {}, {}, list(readers), iter(todo)
        self.passed = (None, None)  # the last unit and place a chunk yielded ended at

    def chunks(self) -> Iterator[Encoded]:
        while self.head < len(self.todo):
            self.start_idle_readers()
            ready = self.oldest_ready()
            if ready is not None:
                yield ready
            else:
                self.receive()

    def start_idle_readers(self):
        for r in list(self.idle):
            u = next(self.assign, None)
            if u is None:
                break
            r.start(u, self.place if u == self.todo[0] else None)
            self.busy[r], self.queues[u] = u, deque()
            self.idle.remove(r)

    def oldest_ready(self) -> Optional[Encoded]:
        """The oldest unit's next chunk, if it is encoded (or its reader's error, raised)."""
        u = self.todo[self.head]
        q = self.queues[u]
        if not q or not (isinstance(q[0], UserError) or q[0][0].done()):
            return None
        item = q.popleft()
        if isinstance(item, UserError):
            raise item
        future, chunk = item
        try:
            tokens, cuts, forced, own = future.result()
        except EncodeFailed as e:  # (the place: the last this unit's chunks passed, else its start)
            raise EncodeFailed(e.args[0], u, self.passed[1] if self.passed[0] == u else None) from None
        if chunk.place is not None:
            self.passed = (u, chunk.place)
        chunk.counts.forced_cuts += forced
        if chunk.finished:
            del self.queues[u]
            self.head += 1
        return Encoded(u, tokens, cuts, chunk, own)

    def receive(self):
        """Takes the chunks the readers have ready (those the window allows), into the pool; or,
        when the window is full, waits for the oldest chunk's encoding."""
        q = self.queues[self.todo[self.head]]
        in_flight = sum(len(x) for x in self.queues.values())
        want = [r for r, u in self.busy.items()
                if in_flight < self.window or (u == self.todo[self.head] and len(q) < self.window)]
        if not want:
            wait_futures([q[0][0]])
            return
        if want[0].conn:  # (when the oldest chunk is in the pool, look at it again soon)
            ready = wait_connections([r.conn for r in want], 0.002 if q else None)
            want = [r for r in want if r.conn in ready]
        for r in want:
            u, chunk = r.recv()
            if isinstance(chunk, UserError):
                self.queues[u].append(chunk)
            else:
                self.queues[u].append((self.pool.submit(self.encode, chunk.segments), chunk))
            if isinstance(chunk, UserError) or chunk.finished:
                del self.busy[r]
                self.idle.append(r)


def encoded_chunks(inputs, units, todo, place, config, tok, dtype) -> Iterator[Encoded]:
    """Reads (reader processes), cuts and encodes (threads) the units todo, from place in the
    first; yields their Encoded chunks in order."""
    if not todo:
        return
    small = sum(units[u].weight for u in todo) <= config.small_input
    readers = [LocalReader(inputs, units, config)] if small else \
        [ProcessReader(inputs, units, config) for _ in range(min(config.readers, len(todo)))]
    pool = ThreadPoolExecutor(config.workers)
    try:
        yield from Scheduler(readers, pool, functools.partial(tok.encode_chunk, dtype=dtype), todo, place,
                             config.workers * IN_FLIGHT_PER_WORKER).chunks()
    except EncodeFailed as e:
        # exact tokens leave no way round: a document is cut only where the pattern allows it
        raise UserError(f"tiktoken cannot encode the text of {where(inputs, units[e.args[1]], e.args[2])} or "
                        f"after it with this tokenizer's pattern ({e.args[0]}): its regex engine gives up where a "
                        "look-around ((?= or (?!) backtracks over a very long run, such as a word of a million "
                        "characters, and a shorter --chunk-size does not change that (text is cut only where the "
                        "pattern allows); use a pattern without look-around on such runs (--tokenizer-pattern, or "
                        "a tokenizer.json's Split regex), or leave that text out; the work before it is kept") from None
    finally:
        for r in readers:
            r.close()
        pool.shutdown(wait=True, cancel_futures=True)


# -----------------------------------------------------------------------------
# splits: the writer sees pieces in input order and decides where each goes

@dataclass
class SplitState:
    """The writer's place in the stream of pieces; saved in each checkpoint."""
    piece: int = -1             # the last piece's number
    open: bool = False          # it goes on in the next chunk
    doc: Optional[int] = None   # the split of the document in progress (None between documents)
    val_done: bool = False      # --val-tokens is reached
    tokens: list = field(default_factory=lambda: [0, 0])   # per split (TRAIN, VAL)
    docs: list = field(default_factory=lambda: [0, 0])
    own: list = field(default_factory=lambda: [0, 0])      # documents' own tokens with the EOT's id


def split_chunk(tokens, cuts: list, split: SplitState, rule: ValRule, eot: int, max_tokens: Optional[int],
                own=()) -> tuple:
    """The chunk's tokens for train and for val, by the rule; updates split. Pieces end after each
    end-of-text token but a document's own (see document_ends) and at cuts; the first continues
    the last piece of the previous chunk if that did not end (see ValRule). With
    max_tokens, the chunk ends after the first document end at or after that many tokens in all.
    Returns (train, val, whether max_tokens was reached)."""
    reached, eots = False, document_ends(tokens, eot, own)
    if max_tokens:
        over = eots[sum(split.tokens) + eots >= max_tokens]
        if len(over):
            tokens, cuts, reached = tokens[:over[0]], [c for c in cuts if c <= over[0]], True
            eots, own = eots[eots <= over[0]], [p for p in own if p < over[0]]
    if not len(tokens):
        return tokens, tokens, reached
    ends = np.union1d(eots, np.asarray(cuts, dtype=np.int64))
    if not len(ends) or ends[-1] != len(tokens):
        ends = np.append(ends, len(tokens))
    bounds = np.concatenate(([0], ends)).astype(np.int64)
    lengths = np.diff(bounds)
    pieces = split.piece + (0 if split.open else 1) + np.arange(len(lengths))
    doc_ends = tokens[bounds[1:] - 1] == eot
    if len(own):
        doc_ends &= ~np.isin(bounds[1:], np.asarray(own, dtype=np.int64) + 1)
    if rule.kind == "fraction":
        val = (pieces >= 1) & (np.ceil(pieces * rule.amount) > np.ceil((pieces - 1) * rule.amount))
    else:
        val = first_documents_to_val(lengths, doc_ends, split, rule.amount)
    mask = np.repeat(val, lengths)
    parts = tokens[~mask], tokens[mask]
    own_val = int(np.count_nonzero(mask[np.asarray(own, dtype=np.int64)]))
    for s, docs, owned in ((TRAIN, doc_ends & ~val, len(own) - own_val), (VAL, doc_ends & val, own_val)):
        split.tokens[s] += len(parts[s])
        split.docs[s] += int(np.count_nonzero(docs))
        split.own[s] += owned
    split.piece, split.open = int(pieces[-1]), not doc_ends[-1] and len(tokens) not in cuts
    return parts[TRAIN], parts[VAL], reached


def document_ends(tokens, eot: int, own=()):
    """Where documents end in a chunk's tokens (after each end-of-text token): from the input's
    structure, so a token of a document's own text with the same id (own: its position) ends none."""
    ends = np.flatnonzero(tokens == eot) + 1
    return np.setdiff1d(ends, np.asarray(own, dtype=np.int64) + 1) if len(own) else ends


def first_documents_to_val(lengths, doc_ends, split: SplitState, val_tokens: int):
    """Which pieces go to val under --val-tokens: whole documents, while val holds fewer than
    val_tokens tokens when they start; updates split."""
    val, have = np.zeros(len(lengths), bool), split.tokens[VAL]
    for i in range(len(lengths)):
        if split.doc is None:
            if split.val_done:
                break  # the rest is train
            split.doc = VAL if have < val_tokens else TRAIN
        val[i] = split.doc == VAL
        have += int(lengths[i]) * bool(val[i])
        if doc_ends[i]:
            split.doc, split.val_done = None, have >= val_tokens
    return val


# -----------------------------------------------------------------------------
# files on disk: durable JSON, the lock, and a writer for each output format

def write_json(path, obj):
    """Replaces path atomically and durably."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")


def fsync_dir(path):
    """Makes the renames in folder path durable, where a folder can be opened (not on Windows,
    whose renames are durable without it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path} ({e}); run with --restart to start over") from None


def take_lock(folder, name, what) -> tuple:
    """One run per output folder (or shard): a lock that the OS drops when the process dies
    (flock on Linux and macOS, msvcrt.locking of the file's first byte on Windows). A file
    system that refuses locks (some network file systems) gets a warning, not a stop. The lock
    is (its path, the open file). A run that ends removes the file (see release_lock): so once
    locked, the file must still be the one at the path, else another run ended and removed it
    before this one got it, and it is taken again."""
    path = os.path.join(folder, name)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES, errno.EDEADLK):
                print(f"warning: {folder} does not support file locks ({e.strerror}): make sure that no "
                      "other run writes there at the same time", file=sys.stderr)
                return path, fd
            os.close(fd)
            raise UserError(f"another {what} {folder}; wait for it to finish (or stop it) before "
                            "running again, or use another --out-dir") from None
        if same_file(fd, path):
            return path, fd
        os.close(fd)


def same_file(fd, path) -> bool:
    """Whether the open file fd is the file at path now."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def release_lock(lock: tuple):
    """Removes the lock file while holding it, then lets it go (a run that opened the file
    meanwhile sees it is gone once it gets it, see take_lock). Windows removes no file that is
    open: there it is removed after it is closed, unless another run has it open (then it stays)."""
    path, fd = lock
    try:
        os.remove(path)
    except OSError:  # (Windows: this run's own handle)
        os.close(fd)
        try:
            os.remove(path)
        except OSError:
            pass
        return
    os.close(fd)


def truncate_open(path, length):
    """Opens an in-progress file for appending, cut back to length (its last checkpoint)."""
    if not os.path.exists(path) or os.path.getsize(path) < length:
        raise UserError(f"{path} is shorter than its checkpoint says (was it changed?); "
                        "run with --restart to start over")
    os.truncate(path, length)
    return open(path, "ab")


def fsync_files(files):
    for f in files:
        f.flush()
        os.fsync(f.fileno())


def crc32_times(a, b):
    """a times b, polynomials modulo CRC-32's (bit-reversed: bit 31 holds x^0), as zlib's multmodp."""
    product = 0
    for bit in range(31, -1, -1):
        if a >> bit & 1:
            product ^= b
        b = b >> 1 ^ CRC32_POLY if b & 1 else b >> 1
    return product


def crc32_combine(crc1, crc2, length2):
    """The CRC-32 of bytes A then B from A's (crc1), B's (crc2) and B's length: zlib's
    crc32_combine, which Python's zlib does not offer. (A shard's header is known only when it
    closes, after its tokens were checksummed as they were written.)"""
    shift, square = 1 << 31, 1 << 23   # x^0; x^8 (one byte)
    while length2:
        if length2 & 1:
            shift = crc32_times(shift, square)
        square = crc32_times(square, square)
        length2 >>= 1
    return crc32_times(shift, crc1) ^ crc2


def crc32_hex(crc):
    return f"{crc:08x}"


def crc32_of_file(path, start=0, end=None):
    """The CRC-32 of a file's bytes start:end, read in blocks: only for the files of a checkpoint
    of before the checksums, which a resumed run reads back once."""
    crc, left = 0, (os.path.getsize(path) if end is None else end) - start
    with open(path, "rb") as f:
        f.seek(start)
        while left > 0 and (block := f.read(min(left, 1 << 24))):
            crc, left = zlib.crc32(block, crc), left - len(block)
    return crc


class Writer:
    """What the writers of the formats share: an open file per split (train, val) and the state
    of the files (a dataclass, saved in each checkpoint after the files are fsynced). Each has
    open(state from a checkpoint or None), write(split, tokens: EOT after each document),
    settle() (after a checkpoint) and finish() (the list of files written). Each file's CRC-32
    is kept up to date with its bytes as they are written (zlib.crc32's running value, an int
    that the checkpoint saves with the lengths: a resumed run goes on from it)."""

    def __init__(self, fmt, out_dir, dtype, _config, eot):
        self.fmt, self.dir, self.dtype, self.eot, self.files = fmt, out_dir, np.dtype(dtype), eot, [None, None]

    def path(self, name):
        return os.path.join(self.dir, name)

    def state(self) -> dict:
        fsync_files(self.files)
        return asdict(self.fs)

    def close(self):
        for f in self.files:
            if f:
                f.close()
        self.files = [None, None]


@dataclass
class BinFiles:
    tokens: list = field(default_factory=lambda: [0, 0])   # in each file
    crc: list = field(default_factory=lambda: [0, 0])      # the CRC-32 of each file's bytes


class BinWriter(Writer):
    """nanoGPT's train.bin and val.bin: flat, headerless, native-endian, EOT after each document.
    Written as *.bin.partial, renamed when complete."""

    def open(self, saved):
        self.fs = BinFiles(**saved) if saved else BinFiles()
        for i, s in enumerate(SPLITS):
            partial = self.path(f"{s}.bin.partial")
            if not saved:
                open(partial, "wb").close()
            elif not os.path.exists(partial) and os.path.exists(self.path(f"{s}.bin")):
                os.replace(self.path(f"{s}.bin"), partial)  # renamed by a finish a kill cut short
            self.files[i] = truncate_open(partial, self.fs.tokens[i] * self.dtype.itemsize)
            if saved and "crc" not in saved:  # (a checkpoint of before the checksums)
                self.fs.crc[i] = crc32_of_file(partial)

    def write(self, split, tokens):
        self.files[split].write(tokens.data)
        self.fs.tokens[split] += len(tokens)
        self.fs.crc[split] = zlib.crc32(tokens.data, self.fs.crc[split])

    def settle(self):
        pass

    def finish(self):
        for f in self.files:
            f.close()
        for s in SPLITS:
            if os.path.exists(self.path(f"{s}.bin.partial")):
                os.replace(self.path(f"{s}.bin.partial"), self.path(f"{s}.bin"))
        return [dict(file=f"{s}.bin", split=s, tokens=self.fs.tokens[i], crc32=crc32_hex(self.fs.crc[i]))
                for i, s in enumerate(SPLITS)]


def llmc_header(n, dtype):
    """llm.c's header: 256 little-endian int32, magic, version, token count (uint32: LLaMA-3's)."""
    if n > LLMC_MAX_TOKENS:
        raise UserError(f"{n:,} tokens do not fit in one llm.c shard (its header holds at most "
                        f"{LLMC_MAX_TOKENS:,}); use a smaller --shard-tokens")
    header = np.zeros(256, "<i4")
    header[:3] = (20240520, 1, n) if np.dtype(dtype).itemsize == 2 else (20240801, 7, n)
    return header.tobytes()


def npy_header(n, dtype):
    """numpy's .npy header (format 1.0) for a 1-d array of n, padded to 128 bytes for every n."""
    d = "{'descr': %r, 'fortran_order': False, 'shape': (%d,), }" % (np.dtype(dtype).newbyteorder("<").str, n)
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) + d.encode("latin1").ljust(117) + b"\n"


@dataclass
class ShardFiles:
    done: list = field(default_factory=lambda: [[], []])   # per split: [name, tokens, documents, CRC-32] of each shard done
    index: list = field(default_factory=lambda: [1, 0])    # the open shard's number (val's is 0)
    length: list = field(default_factory=lambda: [0, 0])   # its tokens
    docs: list = field(default_factory=lambda: [0, 0])     # its documents
    doc_start: list = field(default_factory=lambda: [None, None])  # where its last document starts
    crc: list = field(default_factory=lambda: [0, 0])      # the CRC-32 of its tokens (not of its header)
    doc_crc: list = field(default_factory=lambda: [0, 0])  # of its tokens before doc_start
    carry: list = field(default_factory=list)              # the token held back (see write)
    closing: list = field(default_factory=list)            # [closing name, final name, tokens] of full shards


class ShardWriter(Writer):
    """Shards for llm.c / modded-nanogpt (.bin, a 1024-byte header) or build-nanogpt (.npy):
    {prefix}_val_000000, ..., {prefix}_train_000001, ...; EOT before each document. A shard ends
    at the last whole document that fits in --shard-tokens (a document longer than a shard is
    split); with --val-tokens, val is one shard. The open shard of each split is written as a
    hidden .in-progress-t/-v file (no name a trainer lists: build-nanogpt takes any name holding
    "train" or "val"). A full shard is renamed .closing-t000001 (say),
    and given its header and final name only after a checkpoint records it (settle): a kill at
    any moment resumes to the same bytes."""

    def __init__(self, fmt, out_dir, dtype, config, eot):
        super().__init__(fmt, out_dir, dtype, config, eot)
        self.header, self.prefix = fmt.header, config.prefix
        self.cap = [config.shard_tokens, math.inf if config.val_rule.kind == "tokens" else config.shard_tokens]
        self.hlen = len(self.header(0, self.dtype))

    def shard_name(self, split, index):
        return f"{self.prefix}_{SPLITS[split]}_{index:06d}{self.fmt.extension}"

    def partial(self, split):
        return self.path(f".in-progress-{SPLITS[split][0]}")

    def closing(self, split, index):
        return self.path(f".closing-{SPLITS[split][0]}{index:06d}")

    def open(self, saved):
        self.fs = ShardFiles(**saved) if saved else ShardFiles(carry=[self.eot, self.eot])
        self.settle()  # (what the checkpoint recorded as full, if a kill came first)
        for s in (TRAIN, VAL):
            name = self.shard_name(s, self.fs.index[s])
            for stray in (self.closing(s, self.fs.index[s]), self.path(name)):
                if os.path.exists(stray):  # closed after the checkpoint: its data is the open shard's
                    os.replace(stray, self.partial(s))
            self.files[s] = self.start_file(s, self.fs.length[s])
        if saved and "crc" not in saved:
            self.checksums_from_files()

    def checksums_from_files(self):
        """A checkpoint of before the checksums: the CRC-32s of what it wrote, from the files."""
        fs, size = self.fs, self.dtype.itemsize
        for s in (TRAIN, VAL):
            fs.done[s] = [[name, n, docs, crc32_hex(crc32_of_file(self.path(name)))]
                          for name, n, docs in fs.done[s]]
            fs.crc[s] = crc32_of_file(self.partial(s), self.hlen, self.hlen + fs.length[s] * size)
            if fs.doc_start[s] is not None:
                fs.doc_crc[s] = crc32_of_file(self.partial(s), self.hlen, self.hlen + fs.doc_start[s] * size)

    def start_file(self, s, length):
        if length == 0:
            with open(self.partial(s), "wb") as f:
                f.write(self.header(0, self.dtype))
        return truncate_open(self.partial(s), self.hlen + length * self.dtype.itemsize)

    def write(self, split, tokens):
        """tokens of a split, EOT after each document: written with EOT before each instead (the
        last token held back, as carry, until the next comes), in shards."""
        if not len(tokens):
            return
        fs = self.fs
        out = np.concatenate(([fs.carry[split]], tokens[:-1])).astype(self.dtype)
        fs.carry[split] = int(tokens[-1])
        while len(out):
            n, cap = fs.length[split], self.cap[split]
            starts = n + np.flatnonzero(out == self.eot)
            if n + len(out) <= cap:
                self.append(split, out)
                return
            # the shard ends at the last document start that fits, else (one document) at cap
            fits = [int(p) for p in [fs.doc_start[split], *starts[starts <= cap][-1:]] if p]
            end = max(fits, default=cap)
            if end > n:
                self.append(split, out[:end - n])
                out = out[end - n:]
            self.close_shard(split, end)

    def append(self, split, tokens):
        fs = self.fs
        starts = np.flatnonzero(tokens == self.eot)
        if len(starts):
            fs.doc_start[split] = fs.length[split] + int(starts[-1])
            fs.doc_crc[split] = zlib.crc32(tokens[:starts[-1]].data, fs.crc[split])
            fs.crc[split] = zlib.crc32(tokens[starts[-1]:].data, fs.doc_crc[split])
        else:
            fs.crc[split] = zlib.crc32(tokens.data, fs.crc[split])
        self.files[split].write(tokens.data)
        fs.length[split] += len(tokens)
        fs.docs[split] += len(starts)

    def close_shard(self, split, end):
        """Ends split's open shard at token end; what it held past end (the start of one
        document) begins the next shard."""
        fs = self.fs
        fsync_files([self.files[split]])  # (a checkpoint will record it as full)
        self.files[split].close()  # (before the rename: Windows renames no open file)
        name = self.shard_name(split, fs.index[split])
        closing = self.closing(split, fs.index[split])
        os.replace(self.partial(split), closing)
        fs.index[split] += 1
        self.files[split] = self.start_file(split, 0)
        docs = fs.docs[split]
        # (a shard ends at its length or, see write, at its last document's start)
        tokens_crc = fs.crc[split] if end == fs.length[split] else fs.doc_crc[split]
        crc = crc32_combine(zlib.crc32(self.header(end, self.dtype)), tokens_crc, end * self.dtype.itemsize)
        fs.length[split], fs.docs[split], fs.doc_start[split], fs.crc[split] = 0, 0, None, 0
        with open(closing, "rb") as old:
            old.seek(self.hlen + end * self.dtype.itemsize)
            while block := old.read(1 << 24):
                self.append(split, np.frombuffer(block, self.dtype))
        fs.closing.append([closing, name, end])
        fs.done[split].append([name, end, docs - fs.docs[split], crc32_hex(crc)])

    def settle(self):
        """After a checkpoint: the shards it records as full get their length, header and final
        name (again after a kill: the same)."""
        for closing, name, n in self.fs.closing:
            if os.path.exists(closing):
                with open(closing, "r+b") as f:
                    f.truncate(self.hlen + n * self.dtype.itemsize)
                    f.write(self.header(n, self.dtype))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(closing, self.path(name))
        if self.fs.closing:
            fsync_dir(self.dir)
        self.fs.closing = []

    def finish(self):
        """The open shards, completed: the carried last token written unless it is a
        document's EOT (that one moved before the next document, and there is none)."""
        for s in (TRAIN, VAL):
            if self.fs.carry[s] != self.eot:
                self.append(s, np.array([self.fs.carry[s]], self.dtype))
            if self.fs.length[s]:
                self.close_shard(s, self.fs.length[s])
            self.files[s].close()
            os.remove(self.partial(s))
        self.settle()
        return [dict(file=name, split=SPLITS[s], tokens=n, documents=docs, crc32=crc)
                for s in (VAL, TRAIN) for name, n, docs, crc in self.fs.done[s]]


def bin_warnings(summary, _shards):
    return [f"warning: {s}.bin holds only {summary[s]['tokens']} tokens; nanoGPT's train.py needs more "
            f"than block_size ({BLOCK_SIZE} by default)" +
            (" and cannot read an empty file" if summary[s]["tokens"] == 0 else "")
            for s in SPLITS if summary[s]["tokens"] <= BLOCK_SIZE]


def modded_reads(fmt: str, dtype) -> bool:
    """Whether modded-nanogpt reads the files: llm.c's GPT-2 shards (uint16) alone."""
    return fmt == "llmc" and np.dtype(dtype) == np.uint16


def llmc_warnings(summary, shards):
    said = []
    if not modded_reads(summary["format"], summary["dtype"]):
        return said
    if len(shards["train"]) < 2:
        said.append(f"warning: {plural(len(shards['train']), 'train shard')}: modded-nanogpt's loader needs "
                    "at least 2 (a smaller --shard-tokens gives more)")
    if summary["val"]["tokens"] < MODDED_VAL_TOKENS:
        said.append(f"warning: val holds {summary['val']['tokens']:,} tokens; modded-nanogpt's evaluation "
                    f"reads {MODDED_VAL_TOKENS:,} from its first val shard (set --val-tokens)")
    return said


class Format(NamedTuple):
    """An output format: all that this script knows of it."""
    help: str
    writer: type                # its Writer
    extension: str
    names: str                  # a regex of the names of the files it writes (as trainers list them)
    header: Callable            # (tokens, dtype) -> the bytes before the tokens of each file
    eot_before: bool            # the end-of-text token before each document (else after it)
    prefix: Optional[str]       # the default shard name prefix; None: no shards (one file per split)
    val_rule: ValRule           # the default
    max_tokens: Optional[int]   # at most this many tokens in a file
    uint32: str                 # what a vocabulary over 65,536 tokens means for its trainers
    warnings: Callable          # (summary, files by split) -> what its trainers will trip over


FORMATS = {
    "bin": Format("nanoGPT's train.bin/val.bin", BinWriter, ".bin", r"(train|val)\.bin(\.partial)?",
                  lambda _n, _dtype: b"", False, None, ValRule("fraction", VAL_FRACTION), None,
                  "train.bin/val.bin are written as uint32. nanoGPT's train.py reads uint16: change "
                  "np.uint16 to np.uint32 in its get_batch, and set vocab_size", bin_warnings),
    "llmc": Format("llm.c/modded-nanogpt shards", ShardWriter, ".bin", r".+_(train|val)_\d{6}\.bin",
                   llmc_header, True, "fineweb", ValRule("tokens", VAL_TOKENS), LLMC_MAX_TOKENS,
                   "the shards are written as uint32 with llm.c's LLaMA-3 header (magic 20240801, version 7), "
                   "which llm.c's train_llama3.py reads; its GPT-2 loaders and modded-nanogpt read only uint16",
                   llmc_warnings),
    "npy": Format("build-nanogpt shards", ShardWriter, ".npy", r".+_(train|val)_\d{6}\.npy",
                  npy_header, True, "edufineweb", ValRule("tokens", VAL_TOKENS), None,
                  "the shards are written as uint32", lambda _summary, _shards: []),
}

# every file a run writes in its output folder, in any format (never read as input, see files_in)
OUTPUT_NAME = re.compile("|".join([f.names for f in FORMATS.values()] + [r"\.in-progress-.+", r"\.closing-.+"] +
                                  [re.escape(name) for name in (CHECKPOINT, SUMMARY)]))
PART_NAME = re.compile(r"unit\d{7}\.(bin|json)(\.partial)?")   # in PARTS (see part_path)


def is_output_name(name: str) -> bool:
    """Whether a file of this name in the output folder is one a run writes (in any format)."""
    return bool(OUTPUT_NAME.fullmatch(name))


# -----------------------------------------------------------------------------
# the output folder: the format's writer, the checkpoint and the summary

@dataclass
class Checkpoint:
    """A run's state after the last chunk written; prepare.checkpoint.json is its asdict."""
    fingerprint: dict           # what the bytes depend on (see fingerprints)
    next_unit: int = 0          # the unit being read
    unit_state: Optional[Place] = None   # where in it (None: at its start)
    split: SplitState = field(default_factory=SplitState)
    files: Optional[dict] = None  # the writer's file state (None: no file written yet)
    counts: Counts = field(default_factory=Counts)
    seconds: float = 0.0        # of work, over all runs
    done: bool = False          # every unit is read: only the files are left to finish
    budget: Optional[dict] = None  # where --max-tokens stopped the run

    @classmethod
    def load(cls, saved: dict, path: str) -> Checkpoint:
        try:
            return cls(**dict(saved, unit_state=saved["unit_state"] and Place(**saved["unit_state"]),
                              split=SplitState(**saved["split"]), counts=Counts(**saved["counts"])))
        except (KeyError, TypeError):
            raise UserError(f"{path} was written by another version of this script; run the command "
                            "with --restart to start over") from None


class Output:
    """The output folder of a run: the format's writer, the checkpoint and the summary. A
    checkpoint records the state after the last chunk written: the writer's files are fsynced
    before it is written, so on resume they are cut back to its lengths and anything written
    after it is dropped. Finished files appear only when complete."""

    def __init__(self, out_dir, fingerprint, writer):
        self.dir, self.fingerprint, self.writer = out_dir, fingerprint, writer
        self.checkpoints, self.kill_at = 0, int(os.environ.get(CRASH_ENV, 0))

    def path(self, name):
        return os.path.join(self.dir, name)

    def outputs(self):
        """The files of any earlier run here (whatever its format)."""
        return [name for name in os.listdir(self.dir) if is_output_name(name)]

    def start(self, restart: bool) -> Optional[Checkpoint]:
        """The state to continue from, or None when this output is already finished."""
        if restart:
            self.clear()
        if os.path.exists(self.path(CHECKPOINT)):
            state = read_json(self.path(CHECKPOINT))
            if state.get("files") is None:  # no token recorded yet: nothing to keep, whatever the options
                return self.start(True)
            if not same_run(state.get("fingerprint"), self.fingerprint):
                raise UserError(f"{self.dir} holds an unfinished run with other inputs or options "
                                f"({changed(state.get('fingerprint'), self.fingerprint)}); to finish it, "
                                f"{to_finish(state.get('fingerprint'), self.fingerprint)}, or add --restart to start over")
            return Checkpoint.load(state, self.path(CHECKPOINT))
        if os.path.exists(self.path(SUMMARY)):
            summary = read_json(self.path(SUMMARY))
            if same_run(summary.get("fingerprint"), self.fingerprint) and self.finished_files_match(summary):
                return None
            raise UserError(f"{self.dir} already holds output from a different run "
                            f"({changed(summary.get('fingerprint'), self.fingerprint) or 'files missing'}); "
                            "add --restart to replace it, or choose another --out-dir")
        if self.outputs():
            raise UserError(f"{self.dir} already holds token files ({', '.join(sorted(self.outputs())[:3])}); "
                            "add --restart to replace them, or choose another --out-dir")
        state = Checkpoint(self.fingerprint)  # (its files are made after it is written)
        write_json(self.path(CHECKPOINT), asdict(state))
        return state

    def clear(self):
        for name in self.outputs():
            os.remove(self.path(name))

    def finished_files_match(self, summary):
        return all(os.path.exists(self.path(f["file"])) for f in summary["files"])

    def checkpoint(self, state: Checkpoint):
        state.files = self.writer.state()
        self.checkpoints += 1
        if self.checkpoints == self.kill_at:
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))  # (Windows: TerminateProcess)
        write_json(self.path(CHECKPOINT), asdict(state))
        self.writer.settle()

    def finish(self, summary_of):
        """Completes the files and writes the summary; safe to repeat after a kill."""
        summary = summary_of(self.writer.finish())
        write_json(self.path(SUMMARY), summary)
        os.remove(self.path(CHECKPOINT))
        return summary


# fingerprint keys that releases before these did not write (a --tokenizer file's --doc-token and
# --tokenizer-pattern): a saved fingerprint without them is taken to have this run's, so that a
# run those releases left unfinished still resumes (what it was given for them is not recorded)
LATER_KEYS = ("doc_token", "tokenizer_pattern")


def completed(old, new):
    """A saved fingerprint (a checkpoint's, a summary's or a part's), with this run's values for
    the LATER_KEYS it does not have."""
    return {**{k: new[k] for k in LATER_KEYS if k in new}, **old} if isinstance(old, dict) else old


def same_run(old, new) -> bool:
    """Whether a saved fingerprint is this run's."""
    return completed(old, new) == new


def changed(old, new) -> str:
    """Names what differs between two fingerprints, for the refusal message: each option with its
    value then and now (not one that only --format's default changed), a tokenizer file whose
    content changed, the input files."""
    if not isinstance(old, dict):
        return "unknown"
    old = completed(old, new)
    option = dict(val_rule="the val split", piece_chars="PIECE_CHARS", unit_bytes="UNIT_BYTES",
                  encoding=tokenizer_option(old.get("encoding"), new["encoding"]))
    said = dict(ignored_settings="the tokenizer file's padding, truncation or BPE dropout, which an earlier "
                                 "release ran and this one ignores")
    diffs = [said.get(k) or tokenizer_file_change(old.get(k), new[k]) or
             f"{option.get(k, '--' + k.replace('_', '-'))} was {shown(k, old.get(k))}, now {shown(k, new[k])}"
             for k in new if k != "inputs" and old.get(k) != new[k] and not format_default(k, old, new)]
    if old.get("inputs") != new["inputs"]:
        diffs += changed_inputs(old.get("inputs", []), new["inputs"])
    return "; ".join(diffs)


def shown(key, value) -> str:
    """A fingerprint's value as the options give it."""
    if key == "val_rule" and value:
        return f"--val-{value[0]} {value[1]:,}" if value[0] == "tokens" else f"--val-{value[0]} {value[1]:g}"
    return "none" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def format_default(key, old, new) -> bool:
    """Whether a key differs only because --format did: each side at its format's default."""
    fmts = [FORMATS.get(fp.get("format")) for fp in (old, new)]
    if fmts[0] == fmts[1] or None in fmts or key not in ("val_rule", "prefix", "shard_tokens"):
        return False
    default = lambda fmt: dict(val_rule=list(fmt.val_rule), prefix=fmt.prefix,
                               shard_tokens=SHARD_TOKENS if fmt.prefix else None)[key]
    return [old.get(key), new.get(key)] == [default(fmt) for fmt in fmts]


def tokenizer_option(old, new) -> str:
    """The option that changed a fingerprint's tokenizer name: a file's (see load_tokenizer), a
    built-in encoding's, or its --doc-token's (see builtin_tokenizer)."""
    if " (sha256 " in f"{old}{new}":
        return "--tokenizer"
    return "--encoding" if str(old).split(" (")[0] != new.split(" (")[0] else "--doc-token"


def tokenizer_file_change(old, new) -> Optional[str]:
    """A tokenizer file's content changed (its name holds its sha256, see load_tokenizer): said
    so; None for any other change."""
    (path, sha, was), (new_path, _, now) = str(old).partition(" (sha256 "), str(new).partition(" (sha256 ")
    if not sha or path != new_path:
        return None
    return f"the tokenizer file {path} changed since the run began (its sha256 was {was[:-1]}, now {now[:-1]})"


def to_finish(old, new) -> str:
    """What finishes a run that these inputs or options were refused: undoing what changed."""
    if not isinstance(old, dict):
        return "run the command it began with"
    old = completed(old, new)
    before = {path: rest for path, *rest in old.get("inputs", [])}
    files = [tokenizer_file_change(old.get("encoding"), new["encoding"])] + \
        [p for p, *rest in new["inputs"] if before.get(p, rest) != rest]
    options = [k for k in new if k not in ("inputs", "ignored_settings") and old.get(k) != new[k]
               and not format_default(k, old, new) and not tokenizer_file_change(old.get(k), new[k])]
    steps = [what for what, needed in (
        ("use the release it began with", old.get("ignored_settings") != new.get("ignored_settings")),
        ("restore the changed files (their size and modification time are compared)", any(files)),
        ("give it the input files it began with (in that order)", list(before) != [p for p, *_ in new["inputs"]]),
        ("give it the options it began with", options)) if needed] or ["run the command it began with"]
    return ", ".join(steps[:-1]) + " and " * (len(steps) > 1) + steps[-1]


def changed_inputs(old: list, new: list) -> list:
    """Which input files changed, went or came between two fingerprints' [path, size, mtime]s."""
    before = {path: rest for path, *rest in old}
    now = {path: rest for path, *rest in new}
    files = [p for p in now if before.get(p, now[p]) != now[p]]
    gone = [p for p in before if p not in now]
    added = [p for p in now if p not in before]
    diffs = [f"{what}: {', '.join(ps[:3])}{' ...' if len(ps) > 3 else ''}" for what, ps in
             (("input files changed since the run began", files), ("input files no longer given", gone),
              ("new input files", added)) if ps]
    return diffs or ["the order of the input files"]


# -----------------------------------------------------------------------------
# the run: one loop takes encoded chunks in order into where they go (the output, or a shard's
# parts), with progress, checkpoints and stops


class StopRequest:
    """A stop signal: finish what is in flight, checkpoint, exit."""

    def __init__(self):
        self.signum = 0
        for sig in STOP_SIGNALS:
            signal.signal(sig, self.handle)

    def handle(self, signum, _frame):
        if self.signum:  # a second Ctrl-C: stop at once (the last checkpoint still holds)
            print("stopped at once: the work up to the last checkpoint is kept; run the same command "
                  "to continue", file=sys.stderr)
            sys.exit(128 + signum)
        self.signum = signum


class Progress:
    """How far a run is, in bytes of input (of the units it does): a bar on a terminal; where the
    output goes to a file (Slurm, nohup, CI), a plain line at each tenth and at least every
    PROGRESS_SECONDS, never a carriage return."""

    def __init__(self, what, total, done, tokens_done=0):
        """done, tokens_done: bytes and tokens of the run done before this session (a resume)."""
        self.what, self.total, self.n, self.tokens = what, max(total, 1), done, tokens_done
        self.made = 0  # tokens this session made (the rate is theirs: the earlier sessions' time is not known here)
        self.started = self.said = time.time()
        self.bar = tqdm(total=total, initial=done, unit="B", unit_scale=True, unit_divisor=1024, desc=what,
                        mininterval=1.0, smoothing=0.1) if sys.stderr.isatty() else None
        self.tenth, self.done_at_start = -1, done
        self.update(done, 0)

    def percent(self):
        return 100 * self.n / self.total

    def update(self, done, new_tokens):
        """done: bytes done in all; new_tokens: tokens made since the last update."""
        self.n, self.tokens, self.made = done, self.tokens + new_tokens, self.made + new_tokens
        rate = self.made / max(time.time() - self.started, 1e-9)
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            self.bar.set_postfix_str(f"{rate / 1e6:.2f}M tok/s", refresh=False)
        elif int(10 * self.n / self.total) > self.tenth or time.time() - self.said >= PROGRESS_SECONDS:
            self.tenth, self.said = int(10 * self.n / self.total), time.time()
            left = (self.total - self.n) * (time.time() - self.started) / max(self.n - self.done_at_start, 1) \
                if self.made else 0  # (no estimate before the first tokens, nor one under a second)
            print(f"{self.what}: {self.percent():.0f}% ({size(self.n)} of {size(self.total)}), "
                  f"{self.tokens:,} tokens, {rate / 1e6:.2f}M tokens/s" + " since the resume" * (self.done_at_start > 0)
                  + (f", about {duration(left)} left" if left >= 1 else ""), file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def size(n):
    return next(f"{n / 2**k:.{2 if k else 0}f} {unit}" for k, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB"), (0, "B"))
                if n >= 2**k or not k)


def duration(seconds):
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min" if seconds >= 60 \
        else f"{seconds:.0f} s"


class ToOutput:
    """Chunks into the output: split into train and val, written, checkpointed in state."""

    def __init__(self, out: Output, state: Checkpoint, config: Config, inputs, units, eot):
        self.out, self.state, self.config, self.inputs, self.units, self.eot = out, state, config, inputs, units, eot
        self.started = self.last_checkpoint = time.time()
        self.seconds_before = state.seconds
        # the last place in the input read from (None: a unit's start) and how many documents
        # were kept by then: --max-tokens names its last document from there (see document_place)
        self.read_from = (state.unit_state, sum(state.split.docs))
        if state.unit_state and state.unit_state.token is not None:  # (a --merge resumed inside a unit)
            self.read_from = (None, self.read_from[1] - part_documents(config.parts_dir, state.next_unit,
                                                                       state.unit_state.token, out.writer.dtype, eot))
        out.writer.open(state.files)

    def take(self, item: Encoded) -> bool:
        """Writes the chunk's tokens; whether --max-tokens is reached."""
        state, chunk = self.state, item.chunk
        train, val, reached = split_chunk(item.tokens, item.cuts, state.split, self.config.val_rule, self.eot,
                                          self.config.max_tokens, item.own)
        self.out.writer.write(TRAIN, train)
        self.out.writer.write(VAL, val)
        state.counts.add(chunk.counts)
        if reached:
            place, docs = self.read_from
            state.budget = dict(max_tokens=self.config.max_tokens, stopped_at=document_place(
                self.inputs, self.units[item.unit], place, sum(state.split.docs) - docs, self.config))
        if chunk.finished:
            state.next_unit, state.unit_state = item.unit + 1, None
            self.read_from = (None, sum(state.split.docs))
        elif chunk.place:
            state.next_unit, state.unit_state = item.unit, chunk.place
            if chunk.place.token is None:  # (--merge's places count tokens of a part, not the input)
                self.read_from = (chunk.place, sum(state.split.docs))
        state.seconds = self.seconds_before + time.time() - self.started
        return reached

    def may_stop(self):
        """At a chunk that a run may stop after: a checkpoint, when one is due."""
        if time.time() - self.last_checkpoint >= self.config.checkpoint_seconds:
            self.out.checkpoint(self.state)
            self.last_checkpoint = time.time()

    def failed(self):
        """An input went bad: what came before it is kept."""
        self.out.checkpoint(self.state)

    def end(self, complete: bool):
        self.state.done = self.state.done or complete
        self.out.checkpoint(self.state)

    def close(self):
        self.out.writer.close()


class ToParts:
    """Chunks into a shard's parts: unit{u}.bin (tokens, EOT after each document) and .json
    (where pieces end other than at EOT, the documents' own tokens with the EOT's id, counts). A
    finished unit's part is final (written under another name, fsynced, renamed); a rerun skips
    it, so a stop loses at most the units in progress."""

    def __init__(self, folder, shard, fingerprint):
        self.folder, self.shard, self.fingerprint = folder, shard, fingerprint
        self.parts, self.written = {}, 0   # unit -> the part being written: file, cuts, counts, tokens

    def take(self, item: Encoded) -> bool:
        u = item.unit
        if u not in self.parts:
            self.parts[u] = dict(file=open(part_path(self.folder, u, ".bin.partial"), "wb"), cuts=[], own=[],
                                 counts=Counts(), tokens=0)
        part = self.parts[u]
        part["file"].write(item.tokens.data)
        part["cuts"] += [part["tokens"] + c for c in item.cuts]
        part["own"] += [part["tokens"] + p for p in item.own]
        part["tokens"] += len(item.tokens)
        part["counts"].add(item.chunk.counts)
        if item.chunk.finished:
            del self.parts[u]
            fsync_files([part["file"]])
            part["file"].close()
            os.replace(part_path(self.folder, u, ".bin.partial"), part_path(self.folder, u, ".bin"))
            write_json(part_path(self.folder, u, ".json"), dict(
                tokens=part["tokens"], cuts=part["cuts"], own=part["own"], counts=asdict(part["counts"]),
                shard=list(self.shard), fingerprint=self.fingerprint))
            self.written += 1
        return False

    def may_stop(self):
        pass

    def failed(self):
        pass

    def end(self, complete: bool):
        pass

    def close(self):
        for part in self.parts.values():
            part["file"].close()


def take_all(encoded: Iterator[Encoded], sink, units: list, bar: Progress, done_weight: int) -> int:
    """Takes the encoded chunks, in order, into sink (ToOutput or ToParts) until they are used up
    or --max-tokens is reached (then 0), or until a stop signal (then its number: the run
    stops after the next chunk that has a place to resume from). An input error is raised
    after the sink has kept what came before it."""
    stop = StopRequest()
    complete = False
    try:
        try:
            for item in encoded:
                full = sink.take(item)
                chunk = item.chunk
                done_weight += units[item.unit].weight if chunk.finished else 0
                bar.update(done_weight if chunk.finished else done_weight + chunk.place.progress if chunk.place
                           else bar.n, len(item.tokens))
                if full:
                    complete = True
                    break
                if not (chunk.finished or chunk.place):
                    continue  # (inside a long document: no place to stop or resume at)
                if stop.signum:
                    break
                sink.may_stop()
            else:
                complete = True
        except UserError:
            sink.failed()
            raise
        sink.end(complete)
    finally:
        encoded.close()
        bar.close()
        sink.close()
    return 0 if complete else stop.signum


def make_summary(state: Checkpoint, inputs, tok, dtype, config: Config, files) -> dict:
    counts = state.counts
    return dict(
        encoding=tok.name, tokenizer=dict(tok.about, pattern=config.tokenizer_pattern) if config.tokenizer
        else tok.about,
        dtype=np.dtype(dtype).name, vocab_size=tok.n_vocab, eot=tok.doc_token, doc_token=tok.doc_text,
        cuts="safe" if tok.safe_cuts else "forced only",
        format=config.format, eot_placement="before each document" if FORMATS[config.format].eot_before
        else "after each document",
        **{s: dict(tokens=state.split.tokens[i], documents=state.split.docs[i]) for i, s in enumerate(SPLITS)},
        doc_token_in_text={s: state.split.own[i] for i, s in enumerate(SPLITS)},
        files=files, inputs=[dict(path=inp.path, bytes=inp.size) for inp in inputs],
        budget=state.budget, empty_rows=counts.empty_rows, forced_cuts=counts.forced_cuts,
        invalid_utf8_bytes=counts.bad_bytes, first_invalid_utf8=counts.first_bad,
        bad_lines=counts.bad_lines, first_bad_line=line_place(inputs, counts.first_bad_line),
        skipped_files=counts.skipped_files, seconds=round(state.seconds, 1),
        fingerprint=state.fingerprint)


def line_place(inputs, place):
    """'path line N' for [path, byte] (N counted once, here), or None."""
    if not place:
        return None
    inp = next(i for i in inputs if i.path == place[0])
    return f"{inp.path} line {line_number(inp, place[1]):,}"


def report(summary, out_dir):
    """The plain summary at the end, and warnings about what the trainers will trip over."""
    say = lambda msg: print(msg, file=sys.stderr)
    t, v = summary["train"], summary["val"]
    rate = f" ({(t['tokens'] + v['tokens']) / summary['seconds'] / 1e6:.2f}M tokens/s)" if summary["seconds"] >= 1 else ""
    shards = {s: [f for f in summary["files"] if f["split"] == s] for s in SPLITS}
    place = {s: os.path.join(out_dir, shards[s][0]["file"]) if len(shards[s]) == 1 else
             f"{len(shards[s])} shards in {out_dir}" for s in SPLITS}
    print(f"done: train {plural(t['tokens'], 'token')} ({plural(t['documents'], 'document')}, {place['train']}), "
          f"val {plural(v['tokens'], 'token')} ({plural(v['documents'], 'document')}, {place['val']}), "
          f"{summary['dtype']}, in {summary['seconds']:.0f}s{rate}")
    if summary["budget"]:
        print(f"stopped at --max-tokens {summary['budget']['max_tokens']:,}: the last document kept "
              f"is {summary['budget']['stopped_at']}")
    for warning in FORMATS[summary["format"]].warnings(summary, shards) + input_warnings(summary):
        say(warning)


def input_warnings(summary: dict) -> list:
    """What the run changed or left out of the input, in a sentence each."""
    said, forced = [], summary["forced_cuts"]
    if forced and summary.get("cuts") == "forced only":
        said.append(f"warning: {plural(forced, 'forced cut')}: this tokenizer's cuts are not proven safe, so "
                    f"documents are cut only where they must be (each {MAX_SEARCH:,} characters past "
                    "--chunk-size or a piece's end); tokens next to each such cut may differ from a one-shot encoding")
    elif forced:
        said.append(f"warning: {plural(forced, 'forced cut')}: text ran {MAX_SEARCH:,} characters without a letter "
                    f"or digit followed by whitespace, or held a run of over {LONG_SPACE:,} whitespace characters; "
                    "tokens next to each such cut may differ from a one-shot encoding")
    own = sum(summary.get("doc_token_in_text", {}).values())
    if own:
        said.append(f"warning: the text of documents encodes {plural(own, 'time')} to the document token's id "
                    f"({summary['eot']}, {summary['doc_token']}) as this tokenizer's own piece: kept as the documents' "
                    "tokens, not counted as document ends; a trainer that splits documents at that id sees them cut there")
    if summary["invalid_utf8_bytes"]:
        said.append(f"warning: {plural(summary['invalid_utf8_bytes'], 'invalid UTF-8 byte')} replaced with "
                    f"U+FFFD (the first: {summary['first_invalid_utf8']})")
    if summary["bad_lines"]:
        said.append(f"warning: {plural(summary['bad_lines'], 'line')} that "
                    f"{'is' if summary['bad_lines'] == 1 else 'are'} not JSON left out (--skip-bad-files; the "
                    f"first: {summary['first_bad_line']})")
    if summary["empty_rows"]:
        said.append(f"note: {plural(summary['empty_rows'], 'null or empty row')} skipped")
    if summary["skipped_files"]:
        said.append(f"warning: {plural(len(summary['skipped_files']), 'unreadable file')} left out (wholly or "
                    f"in part): {', '.join(summary['skipped_files'])}")
    return said


def fingerprints(config: Config, inputs, tok) -> tuple:
    """What the bytes depend on: of the parts (tokens of each unit), and of the finished files."""
    parts = dict(encoding=tok.name, text_column=config.text_column, piece_chars=config.piece_chars,
                 unit_bytes=config.unit_bytes, inputs=[[i.path, i.size, i.mtime_ns] for i in inputs])
    if config.tokenizer:  # (a file's name holds its sha256; a built-in encoding's, its --doc-token)
        parts.update(doc_token=tok.doc_text, tokenizer_pattern=config.tokenizer_pattern)
    if tok.about.get("ignored"):  # (earlier releases ran them: their checkpoints do not resume)
        parts.update(ignored_settings=tok.about["ignored"])
    shards = dict(shard_tokens=config.shard_tokens, prefix=config.prefix) if config.prefix else {}
    return parts, dict(parts, format=config.format, val_rule=list(config.val_rule), max_tokens=config.max_tokens,
                       **shards)


def setup(config: Config) -> tuple:
    """Inputs, units, encoding, dtype and the output folder (locked), as every mode needs them."""
    inputs = open_inputs(config)
    units = plan_units(inputs, config)
    tok = load_tokenizer(config)
    dtype = np.uint16 if tok.n_vocab <= 1 << 16 else np.uint32
    lock_name, who = (f".prepare-shard-{config.shard[0]}.lock", "run of this shard is writing to") \
        if config.shard else (LOCK, "prepare.py run is writing to")
    try:
        os.makedirs(config.out_dir, exist_ok=True)
        lock = take_lock(config.out_dir, lock_name, who)
    except OSError as e:
        raise UserError(f"cannot write to {config.out_dir} ({e.strerror}); choose another --out-dir") from None
    return inputs, units, tok, dtype, lock


def prepare(config: Config) -> int:
    """The run, its output folder (or its shard) locked while it lasts."""
    inputs, units, tok, dtype, lock = setup(config)
    try:
        return locked_run(config, inputs, units, tok, dtype)
    finally:
        release_lock(lock)


def locked_run(config: Config, inputs, units, tok, dtype) -> int:
    config = replace(config, safe_cuts=tok.safe_cuts)
    fmt = FORMATS[config.format]
    if dtype is np.uint32:
        print(f"warning: {tok.name} has {tok.n_vocab:,} tokens, more than uint16 holds: {fmt.uint32}.",
              file=sys.stderr)
    parts_fp, fingerprint = fingerprints(config, inputs, tok)
    if config.shard:
        return shard_run(config, inputs, units, tok, dtype, parts_fp)
    check_val_tokens(config, inputs, tok, dtype)
    if config.merge:
        check_parts(config.parts_dir, inputs, units, parts_fp)
    out = Output(config.out_dir, fingerprint, fmt.writer(fmt, config.out_dir, dtype, config, tok.doc_token))
    state = out.start(config.restart)
    if state is None:
        print(f"already done: {config.out_dir} holds the output of these inputs and options "
              "(add --restart to make it again)", file=sys.stderr)
        return 0
    state.counts.add(Counts(skipped_files=[i.path for i in inputs if i.bad]))
    todo = [] if state.done else range(state.next_unit, len(units))  # (done: files left to finish)
    encoded = part_chunks(config.parts_dir, units, todo, state.unit_state, dtype) if config.merge else \
        encoded_chunks(inputs, units, todo, state.unit_state, config, tok, dtype)
    done_weight = sum(u.weight for u in units[:state.next_unit])
    bar = Progress("merging" if config.merge else "tokenizing", sum(u.weight for u in units),
                   done_weight + (state.unit_state.progress if state.unit_state else 0), sum(state.split.tokens))
    stopped = take_all(encoded, ToOutput(out, state, config, inputs, units, tok.doc_token), units, bar, done_weight)
    if not state.done:
        print(f"stopped at {bar.percent():.0f}%; run the same command to continue", file=sys.stderr)
        return 128 + stopped
    try:
        check_split(state.split, state.budget, config, inputs)
    except UserError:
        out.clear()  # (output that no command can finish: nothing may stand in the corrected one's way)
        raise
    out.writer.open(state.files)
    summary = out.finish(lambda files: make_summary(state, inputs, tok, dtype, config, files))
    report(summary, config.out_dir)
    return 0


def most_tokens(inputs, config: Config, tok, limit) -> Optional[int]:
    """At most how many tokens the inputs make, when that is sure and not more than limit, else
    None: a token of a tiktoken encoding holds a byte of the text or more (an invalid byte's
    U+FFFD, three bytes, is one token of gpt2's and cl100k's vocabularies; NFC first makes the
    text at most NFC_GROWTH times longer), each document adds one (Input.most counts both);
    `tokenizers`' normalizers and pre-tokenizers may add text."""
    if not isinstance(tok, TiktokenTokenizer):
        return None
    per_byte, most = NFC_GROWTH if tok.normal else 1, 0
    for inp in inputs:
        held = inp.most
        if held is None and inp.kind == "parquet":
            held = dictionary_bound(inp, config, limit // per_byte - most)
        if held is None:
            return None
        most += held
        if most * per_byte > limit:
            return None
    return most * per_byte


def check_split(split: SplitState, budget: Optional[dict], config: Config, inputs):
    """Refuses to finish output that a trainer cannot use: no token at all, or no train."""
    if sum(split.tokens) == 0:
        raise UserError("the input holds no text to tokenize (" +
                        ", ".join(i.path for i in inputs) + "); nothing was written")
    if config.val_rule.kind == "tokens" and split.tokens[TRAIN] == 0:
        ended = f"--max-tokens {config.max_tokens:,} ended the run at {split.tokens[VAL]:,} tokens" if budget \
            else f"the input holds only {split.tokens[VAL]:,} tokens"
        raise UserError(f"{ended}, and all went to val (--val-tokens {config.val_rule.amount:,}); nothing was "
                        "written: run again with a smaller --val-tokens" + (" or a larger --max-tokens" if budget else ""))


def check_val_tokens(config: Config, inputs, tok, dtype):
    """An input that cannot hold the --val-tokens val split and some train is refused before
    any work, when that is sure (most_tokens); else the end of the run says so."""
    rule = config.val_rule
    most = most_tokens(inputs, config, tok, rule.amount) if rule.kind == "tokens" else None
    if most is not None:
        default = "" if config.val_rule_given else ", the default for --format " + config.format
        modded = f" (modded-nanogpt's evaluation needs {MODDED_VAL_TOKENS:,})" if modded_reads(config.format, dtype) else ""
        raise UserError(f"the input makes at most {most:,} tokens, not more than the {rule.amount:,} "
                        f"that go to val (--val-tokens{default}); set a smaller --val-tokens{modded}, or --val-fraction")


# --- several machines: each writes the parts of its shard of the units; --merge joins them

def part_path(parts_dir, u, suffix):
    return os.path.join(parts_dir, f"unit{u:07d}{suffix}")


def shard_run(config: Config, inputs, units, tok, dtype, parts_fp) -> int:
    """--shard I/N: the units u with u % N == I, each into --parts-dir (see ToParts)."""
    i, n = config.shard
    folder = config.parts_dir
    os.makedirs(folder, exist_ok=True)
    mine = [u for u in range(len(units)) if u % n == i]
    if config.restart:  # (this shard's parts alone: the other shards' runs keep theirs)
        for u in mine:
            remove_part(folder, u)
    todo = [u for u in mine if not part_done(folder, u, parts_fp)]
    done_weight = sum(units[u].weight for u in mine) - sum(units[u].weight for u in todo)
    bar = Progress(f"shard {i}/{n}", sum(units[u].weight for u in mine), done_weight,
                   sum(part_info(folder, u)["tokens"] for u in set(mine) - set(todo)))
    parts = ToParts(folder, config.shard, parts_fp)
    stopped = take_all(encoded_chunks(inputs, units, todo, None, config, tok, dtype), parts, units, bar, done_weight)
    left = len(todo) - parts.written
    if left:
        print(f"stopped with {plural(left, 'unit')} of this shard's {len(todo)} to go; run the same "
              "command to continue", file=sys.stderr)
        return 128 + stopped
    print(f"done: shard {i}/{n}: {plural(len(todo), 'unit')} written to {folder} ({len(mine)} in this "
          "shard); when every shard is done, run the command once more with --merge (and without "
          "--shard, outside the job array) to write the output")
    return 0


def remove_part(parts_dir, u):
    """Deletes a unit's part, its .json first (a part without it is unfinished, see part_info)."""
    for suffix in (".json", ".bin", ".bin.partial"):
        if os.path.exists(part_path(parts_dir, u, suffix)):
            os.remove(part_path(parts_dir, u, suffix))


def part_info(parts_dir, u):
    """A finished part's .json, or None."""
    meta = part_path(parts_dir, u, ".json")
    if not os.path.exists(meta) or not os.path.exists(part_path(parts_dir, u, ".bin")):
        return None
    return read_json(meta)


def part_done(parts_dir, u, parts_fp):
    info = part_info(parts_dir, u)
    return info is not None and same_run(info.get("fingerprint"), parts_fp)


def check_parts(parts_dir, inputs, units, parts_fp):
    """Refuses a --merge before any work unless every unit's part is there and made from these
    inputs and options; says which --shard runs to (re)run, or which inputs changed since."""
    infos = [part_info(parts_dir, u) for u in range(len(units))]
    stale = [info for info in infos if info is not None and not same_run(info.get("fingerprint"), parts_fp)]
    if stale:
        raise UserError(f"the parts in {parts_dir} were made from other inputs or options "
                        f"({changed(stale[0].get('fingerprint'), parts_fp)}); run the --shard runs "
                        "again (they redo those parts), then --merge")
    missing = [u for u, info in enumerate(infos) if info is None]
    if not missing:
        return
    shown = "; ".join(f"unit {u} ({where(inputs, units[u], None)})" for u in missing[:10])
    raise UserError(f"--merge needs every unit's part in {parts_dir}, and {len(missing)} of {len(units)} are "
                    f"missing or unfinished: {shown}{' ...' if len(missing) > 10 else ''}; run (or rerun) "
                    f"{shard_runs_of(missing, infos)}, then --merge again")


def shard_runs_of(missing: list, infos: list) -> str:
    """The --shard runs that make the missing units (N as the parts there record it)."""
    n = next((info["shard"][1] for info in infos if info and "shard" in info), None)
    if not n:
        return "the --shard runs"
    return ", ".join(f"--shard {i}/{n}" for i in sorted({u % n for u in missing}))


def part_documents(parts_dir, u, tokens, dtype, eot, block=1 << 20) -> int:
    """The documents that end in the first tokens of unit u's part (each ends with eot)."""
    with open(part_path(parts_dir, u, ".bin"), "rb") as f:
        return sum(int(np.count_nonzero(np.fromfile(f, dtype, count=min(block, tokens - lo)) == eot))
                   for lo in range(0, tokens, block))


def part_chunks(parts_dir, units, todo, place, dtype, block=1 << 20) -> Iterator[Encoded]:
    """The parts' tokens of the units todo, in blocks, from place (its token) in the first: what
    encoded_chunks gives on one machine, from disk."""
    itemsize = np.dtype(dtype).itemsize
    for u in todo:
        info = read_json(part_path(parts_dir, u, ".json"))
        start = (place.token or 0 if place else 0) if u == todo[0] else 0
        size = os.path.getsize(part_path(parts_dir, u, ".bin")) // itemsize
        if size != info["tokens"]:
            raise UserError(f"{part_path(parts_dir, u, '.bin')} holds {size:,} tokens, but its .json says "
                            f"{info['tokens']:,}; delete both and rerun its --shard run")
        for lo in range(start, max(size, 1), block):
            hi = min(lo + block, size)
            tokens = np.fromfile(part_path(parts_dir, u, ".bin"), dtype, count=hi - lo, offset=lo * itemsize)
            last = hi == size
            yield Encoded(u, tokens, [c - lo for c in info["cuts"] if lo < c <= hi], Chunk(
                [], Counts(**info["counts"]) if last else Counts(), None if last else
                Place(token=hi, progress=units[u].weight * hi // max(size, 1)), last),
                tuple(p - lo for p in info.get("own", []) if lo <= p < hi))


# -----------------------------------------------------------------------------
# --verify: check finished output against its summary

def verify(config: Config) -> int:
    out_dir = config.out_dir
    summary_path = os.path.join(out_dir, SUMMARY)
    if not os.path.exists(summary_path):
        raise UserError(f"{out_dir} holds no finished output ({SUMMARY} is missing)")
    summary = read_json(summary_path)
    tok = summary_tokenizer(summary, config)
    dtype = np.dtype(summary["dtype"])
    if not all("crc32" in f for f in summary["files"]):
        print(f"note: {summary_path} records no checksums (it was written by an earlier version of this script): "
              "the files' headers, sizes, token ranges and document counts are checked, not each token",
              file=sys.stderr)
    bad = []  # (every file is checked, each bad one named)
    for s in SPLITS:
        files = [f for f in summary["files"] if f["split"] == s]
        docs, bad_before = 0, len(bad)
        for i, f in enumerate(files):
            try:
                docs += verify_file(os.path.join(out_dir, f["file"]), f, summary, tok, dtype, shows=i == 0)
            except UserError as e:
                print(f"error: {e}", file=sys.stderr)
                bad.append(f["file"])
        if len(bad) == bad_before and (docs != eots_of(summary, s) or
                                       sum(f["tokens"] for f in files) != summary[s]["tokens"]):
            print(f"error: the {s} files hold {docs:,} documents, but the summary says {summary[s]['documents']:,}",
                  file=sys.stderr)
            bad.append(f"the {s} counts")
    if bad:
        raise UserError(f"{plural(len(bad), 'problem')} in {out_dir} (each named above): {', '.join(bad[:5])}"
                        f"{' ...' if len(bad) > 5 else ''}; the run's command with --restart makes the output again")
    return 0


def eots_of(summary: dict, split: str) -> int:
    """How many end-of-text ids the split's files hold: one per document, and any of documents'
    own text (see document_ends; a summary of before that has none)."""
    return summary[split]["documents"] + summary.get("doc_token_in_text", {}).get(split, 0)


def summary_tokenizer(summary: dict, config: Config):
    """The tokenizer the output was made with, as its summary names it (its file unchanged)."""
    about = summary.get("tokenizer") or dict(encoding=summary["encoding"])  # (or a summary of before --tokenizer)
    if "file" not in about:  # a tiktoken encoding
        return builtin_tokenizer(about["encoding"], summary.get("doc_token"))
    try:
        with open(about["file"], "rb") as f:
            same = hashlib.sha256(f.read()).hexdigest() == about["sha256"]
    except OSError as e:
        raise UserError(f"cannot read the tokenizer the output was made with, {about['file']} ({e.strerror})") from None
    if not same:
        raise UserError(f"{about['file']} has changed since the output was made with it; --verify needs that file")
    return load_tokenizer(replace(config, tokenizer=about["file"], tokenizer_pattern=about.get("pattern"),
                                  doc_token=summary["doc_token"]))


def verify_file(path, want, summary, tok, dtype, shows):
    """Checks one file (its header, size, tokens, end-of-text count, CRC-32 where the summary
    records it); shows a document."""
    if not os.path.exists(path):
        raise UserError(f"{path} is missing")
    fmt, n = FORMATS[summary["format"]], want["tokens"]
    header = fmt.header(n, dtype)
    with open(path, "rb") as f:
        head = f.read(len(header))
    crc = zlib.crc32(head)
    if head != header:
        raise UserError(f"{path}: its header is not the {summary['format']} header for {n:,} {dtype.name} tokens")
    size = os.path.getsize(path)
    if size != len(header) + n * dtype.itemsize:
        raise UserError(f"{path} is {size:,} bytes, but the summary says {n:,} "
                        f"{dtype.name} tokens ({len(header) + n * dtype.itemsize:,} bytes)")
    eots, start = 0, np.empty(0, dtype)  # (read in blocks: a memory map's pages would count as ours)
    with open(path, "rb") as f:
        f.seek(len(header))
        for lo in range(0, n, 1 << 24):
            block = np.fromfile(f, dtype, count=min(1 << 24, n - lo))
            start = start if lo else block[:1 << 20].copy()
            if block.max() >= tok.n_vocab:
                bad = int(np.argmax(block >= tok.n_vocab))
                raise UserError(f"{path}: token {lo + bad:,} is {int(block[bad])}, not below the "
                                f"vocabulary size {tok.n_vocab}")
            eots += int(np.count_nonzero(block == tok.doc_token))
            crc = zlib.crc32(block, crc)
    documents = want.get("documents", eots_of(summary, want["split"]))
    if eots != documents:
        raise UserError(f"{path} holds {eots:,} end-of-text tokens, but the summary says "
                        f"{documents:,} documents")
    if want.get("crc32", crc32_hex(crc)) != crc32_hex(crc):
        raise UserError(f"{path}: its CRC-32 is {crc32_hex(crc)}, but the summary says {want['crc32']}: "
                        "some of its tokens changed after it was written")
    print(f"ok: {path}: {n:,} {dtype.name} tokens, {eots:,} documents" +
          (f", CRC-32 {want['crc32']}" if "crc32" in want else ""))
    if shows:
        ends = np.flatnonzero(start == tok.doc_token)[:3]
        docs = zip(ends[:-1] + 1, ends[1:]) if fmt.eot_before else zip([-1, *ends[:-1]], ends)
        for lo, hi in list(docs)[:2]:
            text = tok.decode(start[lo + (not fmt.eot_before):hi].tolist())
            print(f"  {want['split']} document: {text[:200]!r}{'...' if len(text) > 200 else ''}")
    return eots


# -----------------------------------------------------------------------------
# the command line

def shard_arg(text):
    m = re.fullmatch(r"(\d+)/(\d+)", text or "")
    if not m or not int(m.group(1)) < int(m.group(2)):
        raise argparse.ArgumentTypeError("give it as I/N with 0 <= I < N, e.g. 0/4")
    return int(m.group(1)), int(m.group(2))


def slurm_shard():
    """The array task's place in its array, as a shard: (ID - MIN, COUNT); None outside arrays."""
    env = os.environ
    if all(k in env for k in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT")):
        return shard_arg(f"{int(env['SLURM_ARRAY_TASK_ID']) - int(env['SLURM_ARRAY_TASK_MIN'])}/"
                         f"{env['SLURM_ARRAY_TASK_COUNT']}")
    return None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    p.add_argument("--input", nargs="+", action="extend",  # (given twice: both, in order)
                   help=f"files ({SUPPORTED}), folders (searched at any depth) or glob patterns "
                        "(default: train_fineweb.txt here)")
    p.add_argument("--out-dir", default=HERE, help="where the output goes (default: this folder)")
    p.add_argument("--format", choices=list(FORMATS), default="bin",
                   help="; ".join(f"{name}: {fmt.help}" for name, fmt in FORMATS.items()) + " (default bin)")
    p.add_argument("--val-fraction", type=float, default=None,
                   help=f"share of documents held out as val (default {VAL_FRACTION} for --format bin)")
    p.add_argument("--val-tokens", type=int, default=None,
                   help=f"val: the first whole documents until it holds this many tokens "
                        f"(default {VAL_TOKENS:,} for the shard formats)")
    p.add_argument("--shard-tokens", type=int, default=None,
                   help=f"tokens per shard for llmc/npy (default {SHARD_TOKENS:,})")
    p.add_argument("--prefix", help="shard file name prefix (default " + ", ".join(
        f"{fmt.prefix} for {name}" for name, fmt in FORMATS.items() if fmt.prefix) + ")")
    p.add_argument("--max-tokens", type=int, default=None,
                   help="stop at the first document end at or after this many tokens (train + val)")
    p.add_argument("--encoding", help="a tiktoken encoding's name (default gpt2)")
    p.add_argument("--tokenizer", help="instead of --encoding: a tokenizer's file, a Hugging Face tokenizer.json "
                                       "or a tiktoken BPE file (*.tiktoken, Llama 3's tokenizer.model)")
    p.add_argument("--tokenizer-pattern", help="the pre-tokenizer regex of a --tokenizer BPE file other than Llama 3's")
    p.add_argument("--doc-token", help="the text of the special token that separates documents (default: "
                                       f"the tokenizer's {' or '.join(DOC_TOKENS)})")
    p.add_argument("--text-column", default="text", help="parquet column / JSON key with the text (default text)")
    p.add_argument("--chunk-size", type=int, default=CHUNK_CHARS,
                   help=f"characters per encode call (default {CHUNK_CHARS}); output does not depend on it")
    p.add_argument("--workers", type=int, default=usable_cpus(),
                   help="encoding threads (default: all cores); output does not depend on it")
    p.add_argument("--readers", type=int, default=None,
                   help=f"reader processes (default: one per {CORES_PER_READER} workers); output does not depend on it")
    p.add_argument("--shard", type=shard_arg, default=None,
                   help="I/N: process only shard I of N of the input's units into --parts-dir, for "
                        "--merge to join (default in a Slurm job array: the task's place in it)")
    p.add_argument("--merge", action="store_true", help="join the parts of all --shard runs into the output")
    p.add_argument("--parts-dir", help="where --shard runs write their parts and --merge reads them "
                                       "(default: --out-dir/parts)")
    p.add_argument("--checkpoint-seconds", type=float, default=CHECKPOINT_SECONDS,
                   help=f"seconds between checkpoints (default {CHECKPOINT_SECONDS:g})")
    p.add_argument("--restart", action="store_true", help="throw away earlier progress and output here")
    p.add_argument("--skip-bad-files", action="store_true",
                   help="instead of stopping, leave out (with a warning) unreadable files and broken links, "
                        "the rest of a damaged file, and JSON lines that are not JSON")
    p.add_argument("--strict-utf8", action="store_true",
                   help="stop at invalid UTF-8 instead of replacing it with U+FFFD")
    p.add_argument("--verify", action="store_true", help="check finished output in --out-dir and exit")
    return p


def make_config(argv, **sizes) -> Config:
    """The run's Config from the command line (sizes: Config's last fields)."""
    p = parser()
    args = p.parse_args(argv)
    problem = bad_numbers(args)
    if problem:
        p.error(problem)
    if args.shard is None and not args.merge:
        args.shard = slurm_shard()
    if args.shard and args.merge:
        p.error("--merge joins the shards: run it without --shard, once every shard is done")
    fmt = FORMATS[args.format]
    val_rule, given = val_rule_of(args)
    return Config(
        inputs=tuple(args.input or [DEFAULT_INPUT]), out_dir=args.out_dir, format=args.format, val_rule=val_rule,
        val_rule_given=given, shard_tokens=args.shard_tokens or SHARD_TOKENS,
        prefix=fmt.prefix and (args.prefix or fmt.prefix), max_tokens=args.max_tokens, encoding=args.encoding,
        tokenizer=args.tokenizer, tokenizer_pattern=args.tokenizer_pattern, doc_token=args.doc_token,
        text_column=args.text_column, chunk_size=args.chunk_size, workers=args.workers,
        readers=args.readers or -(-args.workers // CORES_PER_READER), shard=args.shard, merge=args.merge,
        parts_dir=args.parts_dir or os.path.join(args.out_dir, PARTS), checkpoint_seconds=args.checkpoint_seconds,
        restart=args.restart, skip_bad_files=args.skip_bad_files, strict_utf8=args.strict_utf8, verify=args.verify,
        **sizes)


def val_rule_of(args) -> tuple:
    """The val rule the options ask for, and whether it was given (else the format's default)."""
    given = ValRule("tokens", args.val_tokens) if args.val_tokens is not None else \
        ValRule("fraction", args.val_fraction) if args.val_fraction is not None else None
    return given or FORMATS[args.format].val_rule, given is not None


def bad_numbers(args) -> Optional[str]:
    """What is wrong with the options' numbers and combinations, in one sentence; None if nothing."""
    at_least = dict(chunk_size=1, workers=1, readers=1, max_tokens=1, shard_tokens=1, val_tokens=0)
    for name, least in at_least.items():
        if getattr(args, name) is not None and getattr(args, name) < least:
            return f"--{name.replace('_', '-')} must be at least 1" if least else \
                f"--{name.replace('_', '-')} must be 0 or more"
    if args.chunk_size > MAX_CHUNK_CHARS:
        return f"--chunk-size must be at most {MAX_CHUNK_CHARS:,} (characters per encode call; a larger one " \
            "only takes more memory)"
    if args.val_fraction is not None and not 0 <= args.val_fraction <= 0.5:
        return "--val-fraction must be between 0 and 0.5"
    if not args.checkpoint_seconds >= 0:
        return "--checkpoint-seconds must be 0 or more"
    return bad_combination(args)


def bad_combination(args) -> Optional[str]:
    if args.encoding and args.tokenizer:
        return "give --encoding or --tokenizer, not both"
    if args.tokenizer_pattern and not (args.tokenizer and not args.tokenizer.lower().endswith(".json")):
        return "--tokenizer-pattern is the pattern of a --tokenizer tiktoken BPE file (a tokenizer.json holds its own)"
    if args.verify and (args.shard or args.merge):
        return "--verify checks the finished output in --out-dir (a --merge's too): run it without --shard and --merge"
    if args.doc_token == "":
        return "--doc-token names a special token: it cannot be empty"
    if args.val_tokens is not None and args.val_fraction is not None:
        return "give --val-tokens or --val-fraction, not both"
    fmt = FORMATS[args.format]
    if fmt.prefix is None and (args.shard_tokens is not None or args.prefix is not None):
        return "--shard-tokens and --prefix name shards, which only --format " + \
            " and ".join(name for name, f in FORMATS.items() if f.prefix) + " write"
    if args.prefix is not None and (not args.prefix or os.path.basename(args.prefix) != args.prefix or "/" in args.prefix):
        return f"--prefix {args.prefix!r} is not a file name: it starts each shard's name, so it cannot be " \
            "empty or name a folder (the folder is --out-dir)"
    rule, given = val_rule_of(args)
    if args.max_tokens is not None and rule.kind == "tokens" and args.max_tokens <= rule.amount:
        default = "" if given else f", the default for --format {args.format}"
        return (f"--max-tokens {args.max_tokens:,} is not more than --val-tokens {rule.amount:,}{default}: every "
                "token would go to val and none to train; give a larger --max-tokens or a smaller --val-tokens")
    if fmt.max_tokens and max(args.shard_tokens or 0, args.val_tokens or 0) > fmt.max_tokens:
        return (f"--shard-tokens and --val-tokens must be at most {fmt.max_tokens:,} for --format {args.format} "
                "(its header holds a shard's token count as an int32)")
    return None


def usable_cpus():
    """The CPUs this process may use: os.process_cpu_count() (Python 3.13+), else its affinity
    (Linux), else all of the machine's (macOS, Windows before 3.13)."""
    if hasattr(os, "process_cpu_count"):
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def check_versions():
    """Stops with one sentence when an installed package is older than MIN_VERSIONS."""
    for name, least in MIN_VERSIONS.items():
        try:
            found = version(name)
        except PackageNotFoundError:  # imported from outside pip's view: it loaded, so go on
            continue
        if version_tuple(found) < version_tuple(least):
            raise UserError(f"{name} {found} is older than this script supports ({least} or newer); "
                            f"run: pip install -U {name}")


def main(argv=None, **sizes) -> int:
    """The command: its exit code. sizes: Config's sizes (the tests make them small)."""
    for stream in (sys.stdout, sys.stderr):  # a path a console cannot show must not stop the run
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    config = make_config(argv, **sizes)
    try:
        check_versions()
        return verify(config) if config.verify else prepare(config)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
    except KeyboardInterrupt:  # Ctrl-C before the work started: nothing to save
        print("stopped; run the same command to continue", file=sys.stderr)
        return 130
    except OSError as e:  # the machine's trouble, not ours: finished work is on disk
        where = e.filename or config.out_dir
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            print(f"error: the disk is full (writing {where}); free some space and run the same "
                  "command again to continue: finished work is kept", file=sys.stderr)
        else:
            print(f"error: {where}: {e.strerror or e}; fix that and run the same command again to "
                  "continue: finished work is kept", file=sys.stderr)
    return 1


if __name__ == "__main__":
    code = main()
    for sig in STOP_SIGNALS:  # the work is over: a stop signal now changes nothing (at exit, Python's
        signal.signal(sig, signal.SIG_IGN)  # default would end the process without a word)
    sys.exit(code)
