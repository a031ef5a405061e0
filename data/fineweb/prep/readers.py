"""Reading units into chunks: in parallel, by processes (or, for a small input, here)."""
from __future__ import annotations

import multiprocessing
import signal
import sys
from dataclasses import dataclass, replace
from typing import Iterator, Optional

from .stop import STOP_SIGNALS, catch_while_starting
from .config import Config, DamagedInput, PIPE_BYTES, SEGMENT_CHARS, UserError, fcntl
from .cutting import Counts, Cutter, Place
from .streams import STREAM_ERRORS, Unit, stream_error
from .kinds import KINDS


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
    place = replace(place) if place else kind.place()
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
    catch_while_starting(reader=True)  # (the entry did so too, as __mp_main__; this holds wherever it runs)
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
    """A reader process. It is spawned (a fresh interpreter that runs the entry and imports this module), as macOS
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
