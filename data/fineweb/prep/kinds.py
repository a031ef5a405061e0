"""Input kinds: for each, how a file is checked before any work, cut into units, and read. A
reader is a generator that gives a unit's documents to the Cutter and yields its progress
(bytes of the unit) whenever a chunk's worth is ready; its position is kept in a Place.
"""
from __future__ import annotations

import codecs
import decimal
import functools
import json
import math
import sys
from typing import Callable, Iterator, NamedTuple, Optional

from .config import (Config, DamagedInput, MARKER, MARKER_BYTES, PARQUET_BATCH_BYTES, SEGMENT_CHARS, STREAM_BLOCK, TEXT_HEAD, UserError, WINDOW_GROWTH)
from .cutting import Cutter, Place, RowPlace, SURROGATE, TextPlace, boundary_end, boundary_start
from .streams import (COMPRESSIONS, Input, STREAM_ERRORS, Unit, arrow, open_stream, reads_to_damage, stream_error)


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
    kind = KINDS[inp.kind]
    return kind.document_place(inp, unit, place or kind.place(), k, config)


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




class InputKind(NamedTuple):
    """A kind of input file: all that this script knows of it."""
    suffixes: tuple             # the file endings it is read from
    compressible: bool          # whether they may also end in a compression suffix
    check: Callable             # (Input, Config, found in a folder) -> the Input to read (bad: left
                                # out), or None to ignore it; before any work
    units: Callable             # (file index, Input, unit bytes) -> its units
    place: type                 # its Place: the Cutter's state and its own position in a unit
    read: Callable              # (Input, Unit, its Place, Cutter, Config) -> a reader (see above)
    position: Callable          # (Input, Unit, its Place or None) -> where that is, for messages
    document_place: Callable    # (Input, Unit, its Place, k, Config) -> where the k-th document from there is


KINDS = {
    "txt": InputKind((".txt",), True, check_txt, byte_units, TextPlace, read_txt, byte_position,
                     txt_document_place),
    "jsonl": InputKind((".jsonl", ".json", ".ndjson"), True, check_jsonl, byte_units, TextPlace, read_jsonl,
                       byte_position, jsonl_document_place),
    "parquet": InputKind((".parquet",), False, check_parquet, parquet_units, RowPlace, read_parquet,
                         parquet_position, parquet_document_place),
}
SUPPORTED = ", ".join(s for k in KINDS.values() if k.compressible for s in k.suffixes) + \
    f" (each also compressed: {', '.join(COMPRESSIONS)})" + \
    "".join(f", {s}" for k in KINDS.values() if not k.compressible for s in k.suffixes)
