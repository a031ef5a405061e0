"""The important numbers: every size and default, and what a run is asked (Config)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import NamedTuple, Optional


INSTALL = "run: pip install -U numpy tiktoken tqdm pyarrow"


try:  # POSIX only: each use below has its fallback
    import fcntl
except ImportError:
    fcntl = None
try:  # Windows only
    import msvcrt
except ImportError:
    msvcrt = None

CHUNK_CHARS = 1 << 20          # characters of text encoded in one call (--chunk-size)
MAX_CHUNK_CHARS = 1 << 24      # the largest --chunk-size: a larger one takes more memory, no less time
UNIT_BYTES = 32 << 20          # a unit of work: this many bytes of a txt/jsonl file, or parquet
                               # row groups holding about this much text; a compressed file is one
PIECE_CHARS = 1 << 20          # a document longer than this goes to train/val in pieces this long
MAX_SEARCH = 1 << 20           # how far past its target a cut may move to find a safe place
WINDOW_GROWTH = 4              # a txt read adds at least 1/4 of the text held unused (see read_txt)
LONG_SPACE = 1 << 17           # whitespace runs longer than this reach tiktoken in parts (forced cuts)
LONG_WORD = 1 << 14            # splintr-rs (--encoder) leaves text with a word this long to tiktoken (its memory)
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
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # data/fineweb: the entry's folder
DEFAULT_INPUT = os.path.join(HERE, "train_fineweb.txt")   # nanoGPT's layout: beside the entry
# GPT-2's ranks ship beside the entry (tiktoken's r50k_base.tiktoken, MIT; the ranks of gpt2 too):
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
SPLINTR_VERSIONS = ((0, 22, 0), (0, 22, 1))  # the splintr-rs releases the tests cover (from, before): --encoder


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
    encoder: str                # --encoder: auto, tiktoken or splintr (see use_splintr)
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


def size(n):
    return next(f"{n / 2**k:.{2 if k else 0}f} {unit}" for k, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB"), (0, "B"))
                if n >= 2**k or not k)


def duration(seconds):
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min" if seconds >= 60 \
        else f"{seconds:.0f} s"
