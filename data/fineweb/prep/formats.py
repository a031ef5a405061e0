"""Files on disk: durable JSON, the lock, and a writer for each output format."""
from __future__ import annotations

import errno
import json
import math
import os
import re
import struct
import sys
import zlib
from dataclasses import asdict, dataclass, field
from typing import Callable, NamedTuple, Optional

import numpy as np

from .config import (BLOCK_SIZE, CHECKPOINT, CRC32_POLY, LLMC_MAX_TOKENS, MODDED_VAL_TOKENS, SPLITS, SUMMARY, TRAIN, UserError, VAL, VAL_FRACTION, VAL_TOKENS, ValRule, fcntl, msvcrt, plural)


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
