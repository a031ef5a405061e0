"""The run: one loop takes encoded chunks in order into where they go (the output, or a share's
parts), with progress, checkpoints and stops
"""
from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import asdict, replace
from typing import Iterator, Optional, Protocol

import numpy as np
from tqdm import tqdm

from .stop import STOP_SIGNALS
from .config import (Config, LOCK, LONG_SPACE, MAX_SEARCH, MODDED_VAL_TOKENS, NFC_GROWTH, PROGRESS_SECONDS, SPLITS, TRAIN, UserError, VAL, duration, plural, size)
from .cutting import Counts, PartPlace
from .kinds import dictionary_bound, document_place, line_number
from .inputs import open_inputs, plan_units, where
from .readers import Chunk
from .tokenizers import TiktokenTokenizer, load_tokenizer, use_splintr
from .schedule import Encoded, encoded_chunks
from .splits import SplitState, split_chunk
from .formats import FORMATS, fsync_files, modded_reads, read_json, release_lock, take_lock, write_json
from .folder import Checkpoint, Output, changed, same_run


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


class Sink(Protocol):
    """Where take_all puts the encoded chunks, in input order: ToOutput (the output, on one
    machine or in a --merge) or ToParts (a --shard run's parts)."""

    def take(self, item: Encoded) -> bool:
        """Puts one chunk; whether --max-tokens is reached."""

    def may_stop(self) -> None:
        """At a chunk a run may stop after: a checkpoint where one is due."""

    def failed(self) -> None:
        """An input went bad: what came before it is kept."""

    def end(self, complete: bool) -> None:
        """The run ends (complete: every unit was read)."""

    def close(self) -> None: ...


class ToOutput:
    """Chunks into the output: split into train and val, written, checkpointed in state."""

    def __init__(self, out: Output, state: Checkpoint, config: Config, inputs, units, eot):
        self.out, self.state, self.config, self.inputs, self.units, self.eot = out, state, config, inputs, units, eot
        self.started = self.last_checkpoint = time.time()
        self.seconds_before = state.seconds
        # the last place in the input read from (None: a unit's start) and how many documents
        # were kept by then: --max-tokens names its last document from there (see document_place)
        self.read_from = (state.unit_state, sum(state.split.docs))
        if isinstance(state.unit_state, PartPlace):  # (a --merge resumed inside a unit)
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
            if not isinstance(chunk.place, PartPlace):  # (--merge's count tokens of a part, not the input)
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
    """Chunks into a share's parts (--shard I/N): unit{u}.bin (tokens, EOT after each document) and .json
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


def take_all(encoded: Iterator[Encoded], sink: Sink, units: list, bar: Progress, done_weight: int) -> int:
    """Takes the encoded chunks, in order, into sink (ToOutput or ToParts) until they are used up
    or --max-tokens is reached (then 0), or until a stop signal (then its number: the run
    stops after the next chunk that has a place to resume from). An input error is raised
    after the sink has kept what came before it."""
    stop = StopRequest()
    complete, resumable = False, True  # (resumable: the last chunk taken has a place to resume from)
    try:
        try:
            for item in encoded:
                full = sink.take(item)
                chunk = item.chunk
                resumable = chunk.finished or chunk.place is not None
                done_weight += units[item.unit].weight if chunk.finished else 0
                bar.update(done_weight if chunk.finished else done_weight + chunk.place.progress if chunk.place
                           else bar.n, len(item.tokens))
                if full:
                    complete = True
                    break
                if not resumable:
                    continue  # (inside a long document, or a batch of chunks: no place to stop or resume at)
                if stop.signum:
                    break
                sink.may_stop()
            else:
                complete = True
        except UserError:
            if resumable:  # (else a checkpoint would record tokens past the place a run resumes from)
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
        cuts="safe" if tok.safe_cuts else "forced only", encoder=tok.encoder,
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
    tok = use_splintr(load_tokenizer(config), config.encoder)
    dtype = np.uint16 if tok.n_vocab <= 1 << 16 else np.uint32
    lock_name, who = (f".prepare-share-{config.shard[0]}.lock", "run of this share (--shard) is writing to") \
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
        return share_run(config, inputs, units, tok, dtype, parts_fp)
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


def share_run(config: Config, inputs, units, tok, dtype, parts_fp) -> int:
    """--shard I/N, share I of N of the input: the units u with u % N == I, each into --parts-dir (see ToParts)."""
    i, n = config.shard
    folder = config.parts_dir
    os.makedirs(folder, exist_ok=True)
    mine = [u for u in range(len(units)) if u % n == i]
    if config.restart:  # (this share's parts alone: the other shares keep theirs)
        for u in mine:
            remove_part(folder, u)
    todo = [u for u in mine if not part_done(folder, u, parts_fp)]
    done_weight = sum(units[u].weight for u in mine) - sum(units[u].weight for u in todo)
    bar = Progress(f"share {i}/{n}", sum(units[u].weight for u in mine), done_weight,
                   sum(part_info(folder, u)["tokens"] for u in set(mine) - set(todo)))
    parts = ToParts(folder, config.shard, parts_fp)
    stopped = take_all(encoded_chunks(inputs, units, todo, None, config, tok, dtype), parts, units, bar, done_weight)
    left = len(todo) - parts.written
    if left:
        print(f"stopped with {plural(left, 'unit')} of this share's {len(todo)} to go; run the same "
              "command to continue", file=sys.stderr)
        return 128 + stopped
    print(f"done: share {i}/{n} of the input (--shard {i}/{n}): {plural(len(todo), 'unit')} written to {folder} "
          f"({len(mine)} in this share); when every share is done, run the command once more with --merge (and without "
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
                PartPlace(token=hi, progress=units[u].weight * hi // max(size, 1)), last),
                tuple(p - lo for p in info.get("own", []) if lo <= p < hi))
