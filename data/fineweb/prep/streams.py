"""Inputs: a file's bytes, decompressed as they are read."""
from __future__ import annotations

import bz2
import lzma
import os
import sys
import zlib
from collections import deque
from typing import Callable, Iterator, NamedTuple, Optional

from .config import DamagedInput, INSTALL, STREAM_BLOCK, UserError
from .cutting import Cutter


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
