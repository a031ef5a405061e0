"""
Turns local FineWeb text (.txt or .parquet) into nanoGPT's train.bin and val.bin.

    python data/fineweb/prepare.py --input train_fineweb.txt
    python data/fineweb/prepare.py --input fineweb/*.parquet --workers 16

Streams the input in bounded memory, writes tokens to disk as they are made, and can be
stopped at any moment (Ctrl-C, kill, crash): running the same command again continues and
ends with the same bytes an uninterrupted run writes. Runs on Linux, macOS and Windows with
Python 3.9+ and numpy, tiktoken, tqdm, pyarrow (the oldest versions: MIN_VERSIONS below).

The output, exactly:
- parquet: every row with non-empty text is a document: encode_ordinary(text) + [EOT].
- txt: documents are separated by runs of the literal marker <|endoftext|> together with the
  whitespace around them; each document becomes encode_ordinary(document) + [EOT]. A file
  without markers is one document: encode_ordinary(whole file) + [EOT].
- Long text is cut only where the tokenizer splits anyway (see find_cut), so the tokens equal
  the one-shot encoding whatever --chunk-size and --workers are.
- train/val: whole documents (pieces of ~1M characters for longer ones), chosen by position.
- train.bin / val.bin: flat native-endian uint16 (uint32 when the vocabulary needs it).
"""
import sys

if sys.version_info < (3, 9):
    sys.exit(f"error: this script needs Python 3.9 or newer, and this is Python "
             f"{sys.version.split()[0]}; run it with a newer python")

import argparse
import errno
import glob
import itertools
import json
import math
import multiprocessing
import os
import re
import signal
import threading
import time
from collections import deque, namedtuple
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version

try:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import tiktoken
    from tqdm import tqdm
except ImportError as e:
    sys.exit(f"error: {e.name or e} is not installed or does not load; run: pip install -U "
             "numpy tiktoken tqdm pyarrow")
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
CHUNK_CHARS = 1 << 20          # characters of text in one unit of work (--chunk-size)
PIECE_CHARS = 1 << 20          # a document longer than this goes to train/val in pieces this long
MAX_SEARCH = 1 << 20           # how far past its target a cut may move to find a safe place
PARQUET_BATCH_ROWS = 256       # parquet rows turned into Python strings at a time
IN_FLIGHT_PER_WORKER = 3       # units of work queued per worker (bounds memory)
PIPE_BYTES = 1 << 20           # the reader process's pipe (Linux's default limit for a user)
SMALL_INPUT = 1 << 20          # input this small is read in this process: starting one costs ~0.3 s
CHECKPOINT_SECONDS = 30.0      # how much work a kill can cost at most (--checkpoint-seconds)
VAL_FRACTION = 0.0005          # as nanoGPT's openwebtext/prepare.py
BLOCK_SIZE = 1024              # nanoGPT's default block_size: each .bin needs more tokens than this
MARKER = "<|endoftext|>"       # the document separator in txt files
HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN, VAL = 0, 1
SPLITS = ("train", "val")
# files in the output folder
LOCK, CHECKPOINT, SUMMARY = ".prepare.lock", "prepare.checkpoint.json", "summary.json"
OUTPUT_FILES = [f"{s}.bin" for s in SPLITS] + [f"{s}.bin.partial" for s in SPLITS] + [CHECKPOINT, SUMMARY]
CRASH_ENV = "PREPARE_TEST_KILL_BEFORE_CHECKPOINT"  # tests: SIGKILL before the Nth checkpoint
# the oldest versions supported (and tested: tests/test_platforms.py builds an environment with them)
MIN_VERSIONS = dict(numpy="1.22.0", tiktoken="0.5.0", pyarrow="10.0.0", tqdm="4.60.0")


class UserError(Exception):
    """A problem with the input or the machine, told to the user in one sentence."""


# -----------------------------------------------------------------------------
# inputs

Input = namedtuple("Input", "path kind size mtime_ns rows bad")


def expand_inputs(patterns, out_dir):
    """The input files, in the order given: folders give their .parquet/.txt files by name."""
    paths = []
    for p in patterns:
        if os.path.isdir(p):
            found = sorted(f for f in os.listdir(p) if f.endswith((".parquet", ".txt")))
            if not found:
                raise UserError(f"{p}: the folder holds no .parquet or .txt files")
            paths += [os.path.join(p, f) for f in found]
        elif os.path.exists(p):
            paths.append(p)
        elif glob.has_magic(p):
            found = sorted(glob.glob(p))
            if not found:
                raise UserError(f"{p}: no file matches this pattern")
            paths += found
        else:
            raise UserError(f"{p}: no such file or folder")
    outputs = {os.path.realpath(os.path.join(out_dir, name)) for name in OUTPUT_FILES}
    for p in paths:
        if os.path.realpath(p) in outputs:
            raise UserError(f"{p} is also where this run writes its output; "
                            "choose another --out-dir or input")
        if not p.endswith((".parquet", ".txt")) or not os.path.isfile(p):
            raise UserError(f"{p}: not a .txt or .parquet file (only those are read)")
    return paths


def parquet_rows(path, column, skip_bad):
    """Rows in a parquet file, after checking from its footer that it has a text column;
    None for an unreadable file that is to be skipped."""
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as e:
        if skip_bad:
            print(f"warning: skipping {path}: not a readable parquet file ({e})", file=sys.stderr)
            return None
        raise UserError(f"{path}: not a readable parquet file ({e}); replace it, or run with "
                        "--skip-bad-files to leave it out") from None
    schema = pf.schema_arrow
    if column not in schema.names:
        raise UserError(f"{path} has no column '{column}' (its columns: {', '.join(schema.names)}); "
                        "name the text column with --text-column")
    kind = schema.field(column).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise UserError(f"{path}: column '{column}' holds {kind}, not text; "
                        "name the text column with --text-column")
    return pf.metadata.num_rows


def open_inputs(patterns, out_dir, column, skip_bad):
    inputs = []
    for path in expand_inputs(patterns, out_dir):
        stat = os.stat(path)
        kind = "parquet" if path.endswith(".parquet") else "txt"
        rows = parquet_rows(path, column, skip_bad) if kind == "parquet" else 0
        inputs.append(Input(os.path.abspath(path), kind, stat.st_size, stat.st_mtime_ns, rows or 0, rows is None))
    return inputs


def progress_bytes(inputs, st):
    """How many bytes of input the reader position st stands for (parquet: rows, pro rata)."""
    done = sum(inp.size for inp in inputs[:st["file"]])
    if st["file"] < len(inputs):
        inp = inputs[st["file"]]
        done += st["offset"] if inp.kind == "txt" else inp.size * st["offset"] // max(inp.rows, 1)
    return done


# -----------------------------------------------------------------------------
# documents: where text may be cut, and which split each piece goes to

# A cut between a letter or digit and whitespace is a place where every tiktoken pattern
# (gpt2/r50k, p50k, cl100k, o200k) ends one pre-token and starts the next, and no pattern looks
# behind: the text on each side encodes to the same tokens alone as it does in the whole.
SAFE_CUT = re.compile(r"[^\W_](?=\s)")
WHITESPACE = re.compile(r"\s*")
BAD_BYTE = re.compile("[\udc80-\udcff]")   # invalid UTF-8 bytes, as decoded by surrogateescape


def find_cut(s, target):
    """The first safe cut at or after index target (>= 1) of s: (index, forced=False). If none
    lies within MAX_SEARCH characters, a forced cut at target + MAX_SEARCH: (index, True).
    None when s ends first. The answer depends only on s[target-1 : target+MAX_SEARCH]."""
    m = SAFE_CUT.search(s, target - 1, target + MAX_SEARCH)
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


def is_val(unit, val_fraction):
    """Unit 1 and then every 1/val_fraction-th unit go to val, so two units give both splits.
    A unit is a document, or a piece of a document longer than PIECE_CHARS."""
    return unit >= 1 and math.ceil(unit * val_fraction) > math.ceil((unit - 1) * val_fraction)


def new_state():
    """The reader's position and everything counted up to it; saved in each checkpoint."""
    return dict(file=0, offset=0, unit=-1, new_unit=True, in_doc=False, piece_len=0,
                docs=[0, 0], tokens=[0, 0], empty_rows=0, forced_cuts=0, bad_bytes=0,
                first_bad=None, skipped_files=[], seconds=0.0, done=False)


class Cutter:
    """Turns documents into segments (text, ends_document, split) for the encoder. A new
    train/val piece starts at the first safe cut at or after every PIECE_CHARS characters of a
    document, wherever the chunks fall, so the split never depends on --chunk-size."""

    def __init__(self, state, chunk, val_fraction, piece_chars):
        self.st, self.chunk, self.val_fraction, self.piece_chars = state, chunk, val_fraction, piece_chars
        self.segments, self.chars = [], 0

    def split(self):
        return VAL if is_val(self.st["unit"], self.val_fraction) else TRAIN

    def emit(self, text, forced=False):
        st = self.st
        st["forced_cuts"] += forced
        if st["new_unit"]:
            st["unit"], st["new_unit"] = st["unit"] + 1, False
        st["in_doc"] = True
        st["piece_len"] += len(text)
        self.segments.append((text, False, self.split()))
        self.chars += len(text)

    def add(self, s, final):
        """Emits the current document's text s: all of it when final; otherwise what can be
        emitted for sure, cut near the chunk size to bound memory. Returns characters used."""
        st, i = self.st, 0
        while True:
            piece_at = i + self.piece_chars - st["piece_len"]
            if not final and piece_at > i + self.chunk:
                cut = find_cut(s, i + self.chunk) if len(s) - i > self.chunk else None
                if cut is None:
                    break
                if cut[0] < piece_at:
                    self.emit(s[i:cut[0]], cut[1])
                    i = cut[0]
                    continue
            cut = find_cut(s, piece_at)
            if cut is None:
                break
            self.emit(s[i:cut[0]], cut[1])
            i, st["piece_len"], st["new_unit"] = cut[0], 0, True
        if final and i < len(s):
            self.emit(s[i:])
            i = len(s)
        return i

    def end_document(self):
        """Ends the document with one end-of-text token; a document with no text is skipped."""
        st = self.st
        if st["in_doc"]:
            split = self.split()
            self.segments.append(("", True, split))
            st["docs"][split] += 1
        st.update(in_doc=False, piece_len=0, new_unit=True)

    def add_documents(self, texts):
        """Whole documents: for each, add(text, final=True) then end_document(). In bulk when no
        document is open and none is empty or longer than PIECE_CHARS (then no cut can fall
        inside one): the documents up to each val one go to train as they are."""
        st = self.st
        if st["in_doc"] or not all(texts) or max(map(len, texts), default=0) > self.piece_chars:
            for text in texts:
                self.add(text, final=True)
                self.end_document()
            return
        first_unit, i = st["unit"] + 1, 0  # texts[k] is unit first_unit + k
        while i < len(texts):
            n = next((k for k in range(i, len(texts)) if is_val(first_unit + k, self.val_fraction)),
                     len(texts))  # texts[n], if any, goes to val
            for split, docs in ((TRAIN, texts[i:n]), (VAL, texts[n:n + 1])):
                self.segments += zip(docs, itertools.repeat(True), itertools.repeat(split))
                self.chars += sum(map(len, docs))
                st["docs"][split] += len(docs)
            i = n + 1
        st["unit"] += len(texts)

    def take(self, fix_bad_bytes=False):
        """The segments so far, with a copy of the state at the end of them."""
        segments = self.segments
        if fix_bad_bytes:
            segments = [(BAD_BYTE.sub("\ufffd", t), e, s) for t, e, s in segments]
        self.segments, self.chars = [], 0
        return segments, json.loads(json.dumps(self.st))


# -----------------------------------------------------------------------------
# chunks: reading the inputs as units of work that end at safe places

def complete_utf8(data):
    """Length of the longest prefix of data that does not end inside a UTF-8 sequence."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:   # a lead byte (or ASCII): is its sequence complete?
            need = 1 if byte < 0xC0 else 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return len(data) - back if need > back else len(data)
    return len(data)


def decode(data, start, path, st, strict):
    """UTF-8 text of data (starting at byte start of path). Invalid bytes become surrogates
    (one per byte, so byte offsets stay exact); they are counted and later replaced by U+FFFD."""
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError as e:
        if strict:
            raise UserError(f"{path}: invalid UTF-8 at byte {start + e.start}; fix the file, or "
                            "run without --strict-utf8 to replace bad bytes with U+FFFD") from None
        text = data.decode("utf-8", "surrogateescape")
        st["bad_bytes"] += len(BAD_BYTE.findall(text))
        st["first_bad"] = st["first_bad"] or f"{path} at byte {start + e.start}"
        return text, True


def check_start(f, path, st):
    """Skips a UTF-8 byte order mark; refuses UTF-16/32 files."""
    head = f.read(4)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or head.startswith(b"\x00\x00\xfe\xff"):
        raise UserError(f"{path} is UTF-16/32 text; convert it to UTF-8 first "
                        f"(e.g. iconv -f UTF-16 -t UTF-8 {path} > out.txt)")
    if head.startswith(b"\xef\xbb\xbf"):
        st["offset"] = 3


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


def read_txt(inp, cut, opts):
    """Units of a text file, from byte st['offset'] on; each ends at a boundary or safe cut."""
    st = cut.st
    with open(inp.path, "rb") as f:
        if st["offset"] == 0:
            check_start(f, inp.path, st)
        f.seek(st["offset"])
        buf, carry, eof, dirty = "", b"", False, False
        while not eof:
            start = f.tell() - len(carry)
            block = f.read(opts.chunk_size)
            eof = not block
            data = carry + block
            n = len(data) if eof else complete_utf8(data)
            data, carry = data[:n], data[n:]
            text, bad = decode(data, start, inp.path, st, opts.strict_utf8)
            dirty |= bad
            buf += text
            buf = buf[add_text(cut, buf, eof):]
            st["offset"] = f.tell() - len(carry) - len(buf.encode("utf-8", "surrogateescape"))
            if eof:
                cut.end_document()
                st["file"], st["offset"] = st["file"] + 1, 0
            if eof or cut.chars >= opts.chunk_size:
                yield cut.take(dirty)


def read_parquet(inp, cut, opts):
    """Units of a parquet file's text column, from row st['offset'] on, a row group at a time."""
    st = cut.st
    try:
        pf = pq.ParquetFile(inp.path)
        group, first = 0, 0
        while group < pf.num_row_groups and first + pf.metadata.row_group(group).num_rows <= st["offset"]:
            first += pf.metadata.row_group(group).num_rows
            group += 1
        skip = st["offset"] - first
        for g in range(group, pf.num_row_groups):  # (iter_batches holds on to what it read)
            column = pf.read_row_group(g, columns=[opts.text_column]).column(0)
            for lo in range(skip, len(column), PARQUET_BATCH_ROWS):
                rows = column.slice(lo, PARQUET_BATCH_ROWS).to_pylist()
                texts = [text for text in rows if text]
                cut.add_documents(texts)
                st["empty_rows"] += len(rows) - len(texts)
                st["offset"] += len(rows)
                if cut.chars >= opts.chunk_size:
                    yield cut.take()
            skip = 0
    except (OSError, pa.ArrowException) as e:
        if not opts.skip_bad_files:
            raise UserError(f"{inp.path}: the parquet file is damaged near row {st['offset']} "
                            f"({e}); work done so far is kept: replace the file and run with "
                            "--restart, or run the same command with --skip-bad-files to leave "
                            "the rest of it out") from None
        print(f"warning: skipping the rest of {inp.path} from row {st['offset']}: {e}",
              file=sys.stderr)
        st["skipped_files"].append(inp.path)
    st["file"], st["offset"] = st["file"] + 1, 0
    yield cut.take()


def read_units(inputs, state, opts):
    """All units of work, in input order, from the position in state on."""
    cut = Cutter(state, opts.chunk_size, opts.val_fraction, opts.piece_chars)
    while state["file"] < len(inputs):
        inp = inputs[state["file"]]
        if inp.bad:
            state["skipped_files"].append(inp.path)
            state["file"] += 1
            yield cut.take()
        else:
            yield from (read_txt if inp.kind == "txt" else read_parquet)(inp, cut, opts)


def reader_child(inputs, state, opts, conn):
    """The reader's process: sends each unit, then None (or the UserError that stopped it).
    When the parent dies, the next send fails and this ends too."""
    for sig in STOP_SIGNALS:  # Ctrl-C reaches the whole process group (console on Windows):
        signal.signal(sig, signal.SIG_IGN)  # the parent alone decides when to stop
    try:
        for unit in read_units(inputs, state, opts):
            conn.send(unit)
        conn.send(None)
    except UserError as e:
        conn.send(e)
    except BrokenPipeError:
        pass  # the parent is gone


def start_reader(inputs, state, opts):
    """read_units, run in a child process. A reader thread would hold the GIL that the encoding
    threads need between calls: on 2 cores that made a whole run about 1.5x slower. The child
    is spawned (a fresh interpreter that imports this file), as macOS and Windows must: forking
    a process that runs threads is unsafe, and the ~0.3 s spawn costs once per run."""
    ctx = multiprocessing.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    if hasattr(fcntl, "F_SETPIPE_SZ"):  # Linux: a unit in one write, not 64 KiB at a time
        try:
            fcntl.fcntl(send.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass  # a lower /proc/sys/fs/pipe-max-size: the default pipe is slower, not wrong
    proc = ctx.Process(target=reader_child, daemon=True, args=(inputs, state, opts, send))
    proc.start()
    send.close()

    def units():
        try:
            while (item := recv.recv()) is not None:
                if isinstance(item, UserError):
                    raise item
                yield item
        except EOFError:
            raise RuntimeError("the reader process died; its error is printed above") from None
        finally:
            proc.kill()
            proc.join()
            recv.close()
    return units()


# -----------------------------------------------------------------------------
# tokens

def load_encoding(name):
    if name not in tiktoken.list_encoding_names():
        raise UserError(f"unknown --encoding '{name}'; valid names: "
                        f"{', '.join(tiktoken.list_encoding_names())}")
    try:
        enc = tiktoken.get_encoding(name)
    except Exception as e:  # tiktoken raises whatever its download raised
        cache = os.environ.get("TIKTOKEN_CACHE_DIR", "<tmp>/data-gym-cache")
        raise UserError(f"could not load the '{name}' vocabulary ({type(e).__name__}): tiktoken "
                        f"downloads it once and keeps it in {cache}; on a machine without "
                        "internet, copy that cache folder from a machine that has run this, and "
                        "set TIKTOKEN_CACHE_DIR to it (see README, 'Offline use')") from None
    if MARKER not in enc.special_tokens_set:
        raise UserError(f"encoding '{name}' has no {MARKER} token to end documents with")
    return enc


_local = threading.local()


def thread_encoding(enc):
    """Each worker thread's own Encoding: threads sharing one slow each other down."""
    if getattr(_local, "name", None) != enc.name:
        _local.name = enc.name
        _local.enc = tiktoken.Encoding(enc.name, pat_str=enc._pat_str,
                                       mergeable_ranks=enc._mergeable_ranks,
                                       special_tokens=enc._special_tokens)
    return _local.enc


def encode_array(enc, text, allowed=()):
    """Token ids of text as a uint32 array; special tokens' text is ordinary text, except the
    allowed ones. tiktoken before 0.9 has no encode_to_numpy: a list, converted (slower)."""
    if hasattr(enc, "encode_to_numpy"):
        return enc.encode_to_numpy(text, allowed_special=set(allowed), disallowed_special=())
    return np.array(enc.encode(text, allowed_special=set(allowed), disallowed_special=()), dtype=np.uint32)


def encode_unit(enc, segments, dtype):
    """Token ids of a unit's segments, as (train array, val array). Each run of segments going
    to the same split is encoded in one call, with the marker after each document allowed as
    the end-of-text token: tiktoken encodes the text between special tokens on its own, so this
    gives the same tokens as encoding segment by segment, in one call instead of hundreds."""
    enc = thread_encoding(enc)
    parts = ([], [])
    for split, run in itertools.groupby(segments, key=lambda seg: seg[2]):
        run = list(run)
        text = "".join(t + MARKER if ends_doc else t for t, ends_doc, _ in run)
        if text.count(MARKER) == sum(ends_doc for _, ends_doc, _ in run):  # (no marker overlaps another)
            parts[split].append(encode_array(enc, text, {MARKER}))
            continue
        for t, ends_doc, _ in run:  # a document holds the marker as text: encode one by one
            parts[split].append(encode_array(enc, t))
            if ends_doc:
                parts[split].append(np.array([enc.eot_token], dtype=np.uint32))
    return [np.concatenate(p).astype(dtype) if p else np.empty(0, dtype) for p in parts]


# -----------------------------------------------------------------------------
# files on disk: in-progress files, checkpoints, the lock, the finished output

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


def take_lock(out_dir):
    """One run per output folder: a lock that the OS drops when the process dies (flock on
    Linux and macOS, msvcrt.locking of the file's first byte on Windows). A file system that
    refuses locks (some network file systems) gets a warning, not a stop."""
    fd = os.open(os.path.join(out_dir, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES, errno.EDEADLK):
            os.close(fd)
            raise UserError(f"another prepare.py run is writing to {out_dir}; wait for it to finish "
                            "(or stop it) before running again, or use another --out-dir") from None
        print(f"warning: {out_dir} does not support file locks ({e.strerror}): make sure that no "
              "other prepare.py run writes there at the same time", file=sys.stderr)
    return fd


class Output:
    """train.bin/val.bin under construction. Data goes to *.bin.partial; a checkpoint records
    how long those files were when the reader was at a given position. Data is fsynced before
    its checkpoint is written, so on resume the files are cut back to the checkpoint's lengths
    and anything written after it is dropped. The .bin names appear only when complete."""

    def __init__(self, out_dir, fingerprint, dtype):
        self.dir, self.fingerprint, self.dtype = out_dir, fingerprint, np.dtype(dtype)
        self.files, self.checkpoints = [], 0
        self.kill_at = int(os.environ.get(CRASH_ENV, 0))

    def path(self, name):
        return os.path.join(self.dir, name)

    def start(self, restart):
        """The state to continue from, or None when this output is already finished."""
        if restart:
            for name in OUTPUT_FILES:
                if os.path.exists(self.path(name)):
                    os.remove(self.path(name))
        if os.path.exists(self.path(CHECKPOINT)):
            state = read_json(self.path(CHECKPOINT))
            if state.get("fingerprint") != self.fingerprint:
                raise UserError(f"{self.dir} holds an unfinished run with other inputs or options "
                                f"({changed(state.get('fingerprint'), self.fingerprint)}); run the "
                                "same command as before to finish it, or add --restart to start over")
            return state
        if os.path.exists(self.path(SUMMARY)):
            summary = read_json(self.path(SUMMARY))
            if summary.get("fingerprint") == self.fingerprint and self.finished_sizes_match(summary):
                return None
            raise UserError(f"{self.dir} already holds train.bin/val.bin from a different run; "
                            "add --restart to replace them, or choose another --out-dir")
        if any(os.path.exists(self.path(f"{s}.bin")) for s in SPLITS):
            raise UserError(f"{self.dir} already holds train.bin/val.bin; add --restart to "
                            "replace them, or choose another --out-dir")
        state = dict(new_state(), fingerprint=self.fingerprint)
        for s in SPLITS:
            open(self.path(f"{s}.bin.partial"), "wb").close()
        write_json(self.path(CHECKPOINT), state)
        return state

    def finished_sizes_match(self, summary):
        return all(os.path.exists(self.path(f"{s}.bin")) and
                   os.path.getsize(self.path(f"{s}.bin")) == summary[s]["tokens"] * self.dtype.itemsize
                   for s in SPLITS)

    def open(self, state):
        """Opens the in-progress files, cut back to what the checkpoint records."""
        for split, s in enumerate(SPLITS):
            path, length = self.path(f"{s}.bin.partial"), state["tokens"][split] * self.dtype.itemsize
            if not os.path.exists(path) or os.path.getsize(path) < length:
                raise UserError(f"{path} is shorter than its checkpoint says (was it changed?); "
                                "run with --restart to start over")
            os.truncate(path, length)
            self.files.append(open(path, "ab"))

    def write(self, arrays):
        for f, a in zip(self.files, arrays):
            f.write(a.data)

    def checkpoint(self, state):
        for f in self.files:
            f.flush()
            os.fsync(f.fileno())
        self.checkpoints += 1
        if self.checkpoints == self.kill_at:
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))  # (Windows: TerminateProcess)
        write_json(self.path(CHECKPOINT), state)

    def close(self):
        for f in self.files:
            f.close()
        self.files = []

    def finish(self, state, summary):
        """Puts train.bin/val.bin in place and writes the summary; safe to repeat after a kill."""
        for s in SPLITS:
            if os.path.exists(self.path(f"{s}.bin.partial")):
                os.replace(self.path(f"{s}.bin.partial"), self.path(f"{s}.bin"))
        write_json(self.path(SUMMARY), summary)
        os.remove(self.path(CHECKPOINT))


def changed(old, new):
    """Names what differs between two fingerprints, for the refusal message."""
    if not isinstance(old, dict):
        return "unknown"
    diffs = [k for k in new if k != "inputs" and old.get(k) != new[k]]
    if old.get("inputs") != new["inputs"]:
        diffs.append("input files (list, sizes or modification times)")
    return ", ".join(diffs)


# -----------------------------------------------------------------------------
# the run

def make_summary(state, inputs, enc, dtype):
    return dict(
        encoding=enc.name, dtype=np.dtype(dtype).name, vocab_size=enc.n_vocab, eot=enc.eot_token,
        **{s: dict(tokens=state["tokens"][i], documents=state["docs"][i]) for i, s in enumerate(SPLITS)},
        inputs=[dict(path=inp.path, bytes=inp.size) for inp in inputs],
        empty_rows=state["empty_rows"], forced_cuts=state["forced_cuts"],
        invalid_utf8_bytes=state["bad_bytes"], first_invalid_utf8=state["first_bad"],
        skipped_files=state["skipped_files"], seconds=round(state["seconds"], 1),
        fingerprint=state["fingerprint"])


def report(summary, out_dir):
    """The plain summary at the end, and warnings about what nanoGPT will trip over."""
    say = lambda msg: print(msg, file=sys.stderr)
    t, v = summary["train"], summary["val"]
    rate = (t["tokens"] + v["tokens"]) / max(summary["seconds"], 1e-9) / 1e6
    print(f"done: {out_dir}/train.bin {t['tokens']:,} tokens ({t['documents']:,} documents), "
          f"val.bin {v['tokens']:,} tokens ({v['documents']:,} documents), {summary['dtype']}, "
          f"in {summary['seconds']:.0f}s ({rate:.2f}M tokens/s)")
    for s in SPLITS:
        if summary[s]["tokens"] <= BLOCK_SIZE:
            say(f"warning: {s}.bin holds only {summary[s]['tokens']} tokens; nanoGPT's train.py "
                f"needs more than block_size ({BLOCK_SIZE} by default)" +
                (" and cannot read an empty file" if summary[s]["tokens"] == 0 else ""))
    if summary["forced_cuts"]:
        say(f"warning: {summary['forced_cuts']} forced cuts: text ran {MAX_SEARCH:,} characters "
            "without a letter or digit followed by whitespace; tokens next to each such cut may "
            "differ from a one-shot encoding")
    if summary["invalid_utf8_bytes"]:
        say(f"warning: {summary['invalid_utf8_bytes']} invalid UTF-8 bytes were replaced with "
            f"U+FFFD (the first: {summary['first_invalid_utf8']})")
    if summary["empty_rows"]:
        say(f"note: {summary['empty_rows']} null or empty parquet rows were skipped")
    if summary["skipped_files"]:
        say(f"warning: {len(summary['skipped_files'])} unreadable files were left out (wholly or "
            f"in part): {', '.join(summary['skipped_files'])}")


# Ctrl-C everywhere, SIGTERM (kill, Slurm, systemd) where the OS sends it, Ctrl-Break on Windows
STOP_SIGNALS = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGBREAK] if hasattr(signal, "SIGBREAK") else [])


class StopRequest:
    """A stop signal: finish what is in flight, checkpoint, exit."""

    def __init__(self):
        self.signum = 0
        for sig in STOP_SIGNALS:
            signal.signal(sig, self.handle)

    def handle(self, signum, frame):
        if self.signum:  # a second Ctrl-C: stop at once (the last checkpoint still holds)
            sys.exit(128 + signum)
        self.signum = signum


def prepare(args):
    if not 0 <= args.val_fraction <= 0.5:
        raise UserError("--val-fraction must be between 0 and 0.5")
    out_dir = args.out_dir
    args.piece_chars = PIECE_CHARS  # (the reader process reads it here, not as its own global)
    inputs = open_inputs(args.input, out_dir, args.text_column, args.skip_bad_files)
    enc = load_encoding(args.encoding)
    dtype = np.uint16 if enc.n_vocab <= 1 << 16 else np.uint32
    if dtype is np.uint32:
        print(f"warning: '{enc.name}' has {enc.n_vocab:,} tokens, more than uint16 holds: "
              "train.bin/val.bin are written as uint32. nanoGPT's train.py reads uint16: change "
              "np.uint16 to np.uint32 in its get_batch, and set vocab_size.", file=sys.stderr)
    fingerprint = dict(encoding=enc.name, val_fraction=args.val_fraction, text_column=args.text_column,
                       piece_chars=PIECE_CHARS, inputs=[[i.path, i.size, i.mtime_ns] for i in inputs])
    try:
        os.makedirs(out_dir, exist_ok=True)
        lock = take_lock(out_dir)
    except OSError as e:
        raise UserError(f"cannot write to {out_dir} ({e.strerror}); choose another --out-dir") from None
    out = Output(out_dir, fingerprint, dtype)
    state = out.start(args.restart)
    if state is None:
        print(f"already done: {out_dir} holds train.bin/val.bin from these inputs and options "
              "(add --restart to make them again)", file=sys.stderr)
        return 0
    if not state["done"]:
        stopped = encode_all(args, inputs, enc, dtype, out, state)
        if stopped:
            return stopped
    if sum(state["tokens"]) == 0:
        raise UserError("the input holds no text to tokenize (" +
                        ", ".join(i.path for i in inputs) + "); nothing was written")
    summary = make_summary(state, inputs, enc, dtype)
    out.finish(state, summary)
    report(summary, out_dir)
    os.close(lock)
    return 0


def encode_all(args, inputs, enc, dtype, out, state):
    """Reads (in a child process), encodes (in worker threads) and writes, in input order,
    checkpointing as it goes. Returns 0 when the input is used up, or the exit code when
    stopped by a signal."""
    stop = StopRequest()
    if sum(i.size for i in inputs) > SMALL_INPUT:
        units = start_reader(inputs, state, args)
    else:
        units = read_units(inputs, json.loads(json.dumps(state)), args)  # (a copy: it reads ahead)
    total = sum(i.size for i in inputs)
    bar = tqdm(total=total, initial=progress_bytes(inputs, state), unit="B", unit_scale=True,
               unit_divisor=1024, desc="tokenizing", mininterval=1.0, smoothing=0.1)
    pool = ThreadPoolExecutor(args.workers)
    pending = deque()
    started, last_checkpoint, new_tokens = time.time(), time.time(), 0
    seconds_before, finished = state["seconds"], False

    def write_oldest():
        nonlocal last_checkpoint, new_tokens
        future, reached = pending.popleft()
        arrays = future.result()
        out.write(arrays)
        tokens = [state["tokens"][i] + len(arrays[i]) for i in range(2)]
        new_tokens += len(arrays[0]) + len(arrays[1])
        state.update(reached, tokens=tokens, seconds=seconds_before + time.time() - started)
        bar.update(progress_bytes(inputs, state) - bar.n)
        bar.set_postfix_str(f"{new_tokens / max(time.time() - started, 1e-9) / 1e6:.2f}M tok/s",
                            refresh=False)
        if time.time() - last_checkpoint >= args.checkpoint_seconds:
            out.checkpoint(state)
            last_checkpoint = time.time()

    try:
        out.open(state)
        input_error = None
        try:
            for segments, reached in units:
                pending.append((pool.submit(encode_unit, enc, segments, dtype), reached))
                while len(pending) >= args.workers * IN_FLIGHT_PER_WORKER:
                    write_oldest()
                if stop.signum:
                    break
            else:
                finished = True
        except UserError as e:  # an input went bad: what was read before it is kept
            input_error = e
        while pending:
            write_oldest()
        state["done"] = finished
        out.checkpoint(state)
        if input_error:
            raise input_error
    finally:
        units.close()
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        out.close()
    if not state["done"]:
        pct = 100 * progress_bytes(inputs, state) / max(total, 1)
        print(f"stopped at {pct:.0f}%; run the same command to continue", file=sys.stderr)
        return 128 + stop.signum
    return 0


# -----------------------------------------------------------------------------
# --verify: check finished output against its summary

def verify(out_dir):
    summary_path = os.path.join(out_dir, SUMMARY)
    if not os.path.exists(summary_path):
        raise UserError(f"{out_dir} holds no finished output ({SUMMARY} is missing)")
    summary = read_json(summary_path)
    enc = load_encoding(summary["encoding"])
    dtype = np.dtype(summary["dtype"])
    for s in SPLITS:
        path, want = os.path.join(out_dir, f"{s}.bin"), summary[s]
        if not os.path.exists(path):
            raise UserError(f"{path} is missing")
        size = os.path.getsize(path)
        if size != want["tokens"] * dtype.itemsize:
            raise UserError(f"{path} is {size:,} bytes, but the summary says {want['tokens']:,} "
                            f"{dtype.name} tokens ({want['tokens'] * dtype.itemsize:,} bytes)")
        data = np.memmap(path, dtype=dtype, mode="r") if size else np.empty(0, dtype)
        eots = 0
        for lo in range(0, len(data), 1 << 24):
            block = data[lo:lo + (1 << 24)]
            if block.max() >= enc.n_vocab:
                bad = lo + int(np.argmax(block >= enc.n_vocab))
                raise UserError(f"{path}: token {bad:,} is {int(data[bad])}, not below the "
                                f"vocabulary size {enc.n_vocab}")
            eots += int(np.count_nonzero(block == enc.eot_token))
        if eots != want["documents"]:
            raise UserError(f"{path} holds {eots:,} end-of-text tokens, but the summary says "
                            f"{want['documents']:,} documents")
        print(f"ok: {path}: {want['tokens']:,} {dtype.name} tokens, {eots:,} documents")
        ends = np.flatnonzero(data[:1 << 20] == enc.eot_token)[:2]
        for lo, hi in zip([-1, *ends[:-1]], ends):
            text = enc.decode(data[lo + 1:hi].tolist())
            print(f"  {s} document: {text[:200]!r}{'...' if len(text) > 200 else ''}")
    return 0


# -----------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    p.add_argument("--input", nargs="+", default=[os.path.join(HERE, "train_fineweb.txt")],
                   help=".txt/.parquet files, folders or glob patterns (default: train_fineweb.txt here)")
    p.add_argument("--out-dir", default=HERE, help="where train.bin/val.bin go (default: this folder)")
    p.add_argument("--val-fraction", type=float, default=VAL_FRACTION,
                   help=f"share of documents held out as val (default {VAL_FRACTION})")
    p.add_argument("--encoding", default="gpt2", help="tiktoken encoding name (default gpt2)")
    p.add_argument("--text-column", default="text", help="parquet column with the text (default text)")
    p.add_argument("--chunk-size", type=int, default=CHUNK_CHARS,
                   help=f"characters per unit of work (default {CHUNK_CHARS}); output does not depend on it")
    p.add_argument("--workers", type=int, default=usable_cpus(),
                   help="encoding threads (default: all cores); output does not depend on it")
    p.add_argument("--checkpoint-seconds", type=float, default=CHECKPOINT_SECONDS,
                   help=f"seconds between checkpoints (default {CHECKPOINT_SECONDS:g})")
    p.add_argument("--restart", action="store_true", help="throw away earlier progress and output here")
    p.add_argument("--skip-bad-files", action="store_true",
                   help="leave out unreadable parquet files (with a warning) instead of stopping")
    p.add_argument("--strict-utf8", action="store_true",
                   help="stop at invalid UTF-8 instead of replacing it with U+FFFD")
    p.add_argument("--verify", action="store_true", help="check finished output in --out-dir and exit")
    args = p.parse_args(argv)
    if args.chunk_size < 1 or args.workers < 1:
        p.error("--chunk-size and --workers must be at least 1")
    return args


def usable_cpus():
    """The CPUs this process may use: os.process_cpu_count() (Python 3.13+), else its affinity
    (Linux), else all of the machine's (macOS, Windows before 3.13)."""
    if hasattr(os, "process_cpu_count"):
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def version_tuple(v):
    return tuple((list(map(int, re.findall(r"\d+", v))) + [0, 0, 0])[:3])


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


def main(argv=None):
    for stream in (sys.stdout, sys.stderr):  # a path a console cannot show must not stop the run
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = parse_args(argv)
    try:
        check_versions()
        return verify(args.out_dir) if args.verify else prepare(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
    except KeyboardInterrupt:  # Ctrl-C before the work started: nothing to save
        print("stopped; run the same command to continue", file=sys.stderr)
        return 130
    except OSError as e:  # the machine's trouble, not ours: finished work is on disk
        where = e.filename or args.out_dir
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            print(f"error: the disk is full (writing {where}); free some space and run the same "
                  "command again to continue: finished work is kept", file=sys.stderr)
        else:
            print(f"error: {where}: {e.strerror}; fix that and run the same command again to "
                  "continue: finished work is kept", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
