"""The command line: the options, the checks made of them before any work, and main."""
from __future__ import annotations

import argparse
import errno
import os
import re
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Optional

from .config import (CHECKPOINT_SECONDS, CHUNK_CHARS, CORES_PER_READER, Config, DEFAULT_INPUT, HERE, MAX_CHUNK_CHARS, MIN_VERSIONS, PARTS, SHARD_TOKENS, UserError, VAL_FRACTION, VAL_TOKENS, ValRule, version_tuple)
from .kinds import SUPPORTED
from .tokenizers import DOC_TOKENS
from .formats import FORMATS
from .run import prepare
from .verify import verify


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
    p.add_argument("--encoder", choices=["auto", "tiktoken", "splintr"], default="auto",
                   help="what encodes: splintr-rs (faster) where it is installed and encodes a check text as "
                        "tiktoken does at start, else tiktoken (auto, the default); the tokens are the same")
    p.add_argument("--text-column", default="text", help="parquet column / JSON key with the text (default text)")
    p.add_argument("--chunk-size", type=int, default=CHUNK_CHARS,
                   help=f"characters per encode call (default {CHUNK_CHARS}); output does not depend on it")
    p.add_argument("--workers", type=int, default=usable_cpus(),
                   help="encoding threads (default: all cores); output does not depend on it")
    p.add_argument("--readers", type=int, default=None,
                   help=f"reader processes (default: one per {CORES_PER_READER} workers); output does not depend on it")
    p.add_argument("--shard", type=shard_arg, default=None,
                   help="I/N: process only share I of N of the input (its units) into --parts-dir, for "
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
        p.error("--merge joins the parts of every share: run it without --shard, once every share is done")
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
        encoder=args.encoder, **sizes)


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
