"""Splits: the writer sees pieces in input order and decides where each goes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .config import TRAIN, VAL, ValRule


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
