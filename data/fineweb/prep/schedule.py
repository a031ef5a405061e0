"""Chunks to the encoding threads and back: in input order, in a bounded window (Scheduler)."""
from __future__ import annotations

import functools
from collections import deque
from concurrent.futures import ThreadPoolExecutor, wait as wait_futures
from multiprocessing.connection import wait as wait_connections
from typing import Iterator, NamedTuple, Optional

from .config import EncodeFailed, IN_FLIGHT_PER_WORKER, UserError
from .inputs import where
from .readers import Chunk, LocalReader, ProcessReader


class Encoded(NamedTuple):
    """A chunk's tokens, in input order: what the writer (or a share's parts) takes."""
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
