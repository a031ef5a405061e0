"""Tokens: a tokenizer is tiktoken's (a built-in encoding, a BPE file, or a tokenizer.json that
tiktoken runs exactly) or, for any other tokenizer.json, Hugging Face tokenizers'
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import importlib
import json
import os
import re
import sys
import tempfile
import threading
import unicodedata
from importlib.metadata import PackageNotFoundError, version
from typing import Callable, NamedTuple, Optional, Protocol

import numpy as np
import tiktoken

from .config import (Config, EncodeFailed, GPT2_RANKS, GPT2_RANKS_SHA256, LONG_SPACE, LONG_WORD, MARKER, SPLINTR_VERSIONS, UserError,
                     version_tuple)
from .cutting import WHITESPACE


# The pre-tokenizer patterns for which a safe cut (see SAFE_CUT) is proven, besides tiktoken's
# built-in encodings': no alternative matches across a letter or digit followed by whitespace,
# and none looks behind (tests/test_tokenizers.py checks each against one-shot encodings).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
SAFE_PATTERNS = {GPT2_PATTERN, LLAMA3_PATTERN, QWEN2_PATTERN}
# Llama 3, 3.1, 3.2: tokenizer.model holds 128,000 ranks; Meta's code adds 256 special tokens
LLAMA3_RANKS = 128_000
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                   "<|reserved_special_token_1|>", "<|reserved_special_token_2|>", "<|reserved_special_token_3|>",
                   "<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_4|>", "<|eot_id|>"] + \
    [f"<|reserved_special_token_{i}|>" for i in range(5, 251)]
# the token that separates documents, by default: the first of these the tokenizer has (GPT-2's
# family and most BPEs; Llama 3, as llm.c writes it; SentencePiece's end of sentence)
DOC_TOKENS = ("<|endoftext|>", "<|begin_of_text|>", "</s>")
SPECIALS_SHOWN = 8              # special tokens named in the error of a --doc-token that is none
# a tokenizer.json is run by tiktoken only when it encodes this, and each of its tokens' text,
# as `tokenizers` does (besides the tests' proof for its family); else through `tokenizers`
SAMPLE = ("Hello world! It's 2024: naïve café, ÉCOLE, cafe\u0301 \u1100\u1161, 中文字符 and 日本語 🙂👍🏽.\n\n  def f(x):\n\treturn "
          "x**2 + 1234567 # don't\r\n<|endoftext|> 'll 've \u3000 \xa0 end   \n\n\n spaces    ")
# the constructs of a Split regex that mean the same in tokenizers' Oniguruma and tiktoken's
# fancy-regex (an allow-list: any other, such as ^ $ . \b \w \d, a lazy or possessive quantifier,
# a look-behind, a flag but (?i: around ASCII letters, a nested class or a class operation, keeps
# the file on tokenizers). Their general categories' tables agreed for every code point in
# tokenizers 0.23 and tiktoken 0.14; Unicode versions apart, they may differ for new characters.
REGEX_CATEGORY = r"\\[pP]\{(?:[LMNPSZ]|L[ultmo]|M[nce]|N[dlo]|P[cdseifo]|S[mcko]|Z[slp])\}"
REGEX_CHAR = r"\\[rnt]|\\[!-/:;=?@\[-`{-~]"  # (escaped ASCII punctuation but \< \>: word bounds in fancy-regex)
REGEX_CLASS_ITEM = rf"(?:{REGEX_CHAR}|[^\\\[\]\-&~^])(?:-(?:{REGEX_CHAR}|[^\\\[\]\-&~^]))?|\\[sS]|{REGEX_CATEGORY}"
REGEX_TOKEN = re.compile(rf"""(?P<atom>\[\^?(?:{REGEX_CLASS_ITEM})+\]|\\[sS]|{REGEX_CATEGORY}|(?P<char>{REGEX_CHAR}|
                                [^\\^$.|?*+()\[\]{{}}]))|(?P<open>\((?:\?[:=!]|(?P<nocase>\?i:))?)|(?P<close>\))|
                                (?P<alt>\|)|(?P<quantifier>[?*+]|\{{\d+(?:,\d*)?\}})""", re.X)
# Unicode's White_Space characters (what \s matches in both engines) and general categories
WHITESPACE_CHARS = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
GENERAL_CATEGORIES = "Lu Ll Lt Lm Lo Mn Mc Me Nd Nl No Pc Pd Ps Pe Pi Pf Po Sm Sc Sk So Zs Zl Zp Cc Cf Cs Co Cn".split()
# the planes of Unicode's combining marks and canonical decompositions (and CJK compatibility
# ideographs' supplement, tags and variation selectors): where two NFC tables may differ
NFC_PROBE_RANGES = [(0, 0xD800), (0xE000, 0x20000), (0x2F800, 0x2FA20), (0xE0000, 0xE1000)]


def tiktoken_missing_cache(name, e):
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR") or \
        os.path.join(tempfile.gettempdir(), "data-gym-cache")  # (where tiktoken keeps it)
    return UserError(f"could not load the '{name}' vocabulary ({type(e).__name__}): tiktoken downloads it "
                     f"once and keeps it in {cache}; on a machine without internet, copy that cache folder "
                     "from a machine that has run this, and set TIKTOKEN_CACHE_DIR to it (see "
                     "docs/offline.md), or give the vocabulary's file with --tokenizer")


def not_special(doc_text: str, tokenizer: str, specials: list) -> UserError:
    """--doc-token naming no special token: the error, with the tokenizer's special tokens."""
    shown = ", ".join(specials[:SPECIALS_SHOWN]) + (f", ... ({len(specials):,} in all)"
                                                     if len(specials) > SPECIALS_SHOWN else "")
    its = "its special token is" if len(specials) == 1 else "its special tokens are"
    return UserError(f"--doc-token {doc_text!r} is not a special token of {tokenizer}; {its} {shown}: "
                     "give one of them, or leave --doc-token out for the default")


class Tokenizer(Protocol):
    """What a run needs of a tokenizer: TiktokenTokenizer, HuggingFaceTokenizer (load_tokenizer
    picks one). Each encoding thread calls encode_chunk on chunks of its own."""
    name: str                   # for messages
    about: dict                 # for summary.json and the fingerprint (the file, its sha256, how it runs)
    doc_text: str               # the document token's text, and its id:
    doc_token: int
    n_vocab: int                # ids are below this (uint16 output where it is at most 65,536)
    safe_cuts: bool             # whether documents may be cut at safe places (see find_cut)

    def encode_chunk(self, segments: list, dtype) -> tuple:
        """The token ids of a chunk's segments, the document token after each document end;
        where pieces end other than at a document end (token positions); how many cuts were
        forced; which of a document's own tokens have the document token's id: (tokens, cuts,
        forced, own)."""

    def decode(self, ids: list) -> str: ...


class TiktokenTokenizer:
    """A tiktoken Encoding. Documents are joined by the document token's text, allowed as that
    token alone, and encoded in one call (tiktoken encodes the text between special tokens on
    its own: the same tokens as one call per document)."""

    def __init__(self, enc, doc_text: str, name: str, about: dict, safe_cuts: bool, normal: Optional[str] = None,
                 unlike: Optional[tuple] = None):
        if doc_text not in enc._special_tokens:
            raise not_special(doc_text, about.get("encoding") or about["file"], list(enc._special_tokens))
        self.enc, self.doc_text, self.doc_token = enc, doc_text, enc._special_tokens[doc_text]
        self.name, self.about, self.safe_cuts, self.n_vocab = name, about, safe_cuts, enc.n_vocab
        self.fast, self.encoder = None, "tiktoken"  # (or splintr-rs: see use_splintr)
        self.normal = normal  # a Unicode normal form the text is put in first (a tokenizer.json's normalizer)
        # (characters whose NFC differs in Python's and tokenizers' tables, tokenizers' NFC): see nfc_unlike
        self.unlike = unlike
        # documents are joined by the token's text only where its occurrences cannot overlap
        # (no proper prefix of it is also its suffix): then counting them finds each join
        self.joinable = not any(doc_text[:k] == doc_text[-k:] for k in range(1, len(doc_text)))

    def normalized(self, segments: list) -> list:
        """Each segment in the normal form: the same as the whole text's where segments end at
        safe cuts (whitespace composes with nothing, and starts a new combining sequence)."""
        return [seg if text is seg.text else seg._replace(text=text)
                for seg, text in zip(segments, map(self.normal_form, (seg.text for seg in segments)))]

    def normal_form(self, text: str) -> str:
        """text in the normal form: by Python's tables, or by the file's own NFC where text holds
        a character their Unicode versions treat otherwise (~100x slower; rare characters)."""
        if self.unlike and not text.isascii() and holds_any(text, self.unlike[0]):
            return self.unlike[1](text)
        return text if unicodedata.is_normalized(self.normal, text) else unicodedata.normalize(self.normal, text)

    def encode_chunk(self, segments: list, dtype) -> tuple:
        """Token ids of a chunk's segments, where pieces end other than at a document token
        (token positions), how many cuts were forced, and which of a document's own tokens have
        the document token's id (none: tiktoken makes no special token of text): (tokens, cuts,
        forced, own)."""
        if self.fast:
            return self.encode_fast(segments, dtype)
        enc, doc = thread_encoding(self.enc), self.doc_text
        parts, cuts, forced = [], [], 0
        for run in runs_to_piece_ends(self.normalized(segments) if self.normal else segments):
            text = "".join(seg.text + doc if seg.ends_document else seg.text for seg in run)
            if self.joinable and text.count(doc) == sum(seg.ends_document for seg in run):
                calls = [(text, {doc}, False)]
            else:  # a document holds the token's text: encode one by one
                calls = [(seg.text, (), seg.ends_document) for seg in run]
            for t, allowed, doc_after in calls:
                tokens, n = encode_text(enc, t, allowed)
                parts.append(tokens)
                forced += n
                if doc_after:
                    parts.append(np.array([self.doc_token], dtype=np.uint32))
            if run[-1].ends_piece and not run[-1].ends_document:
                cuts.append(sum(len(p) for p in parts))
        tokens = np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype)
        return tokens, cuts, forced, ()

    def encode_fast(self, segments: list, dtype) -> tuple:
        """encode_chunk by splintr-rs: each segment's text (in parts where long_space_cuts cuts
        it) is one text of one batch call, which encodes them on splintr-rs's own threads while
        this one lets go of the GIL; the document token goes after each document's tokens: the
        tokens of tiktoken's joined calls. A segment that holds a long word (long_word) goes to
        tiktoken instead (splintr-rs takes ~70 bytes per byte of its longest piece)."""
        segments = self.normalized(segments) if self.normal else segments
        texts = [seg.text for seg in segments]
        ends, forced, by_tiktoken = None, 0, {}   # (ends: each segment's last text + 1)
        if max(map(len, texts), default=0) >= LONG_WORD:  # (else each segment is one text)
            texts, ends = [], []
            for seg in segments:
                if long_word(seg.text):
                    tokens, k = encode_text(thread_encoding(self.enc), seg.text)
                    by_tiktoken[len(texts)], forced = tokens, forced + k
                    texts.append("")
                else:
                    cuts = long_space_cuts(seg.text)
                    texts += [seg.text[lo:hi] for lo, hi in zip([0, *cuts], [*cuts, len(seg.text)])]
                    forced += len(cuts)
                ends.append(len(texts))
        enc = spare_splintr(self.fast)
        ids, offsets = enc.encode_batch(texts)
        self.fast.spare.append(enc)  # (for the next chunk, on whichever thread)
        if by_tiktoken:
            ids, offsets = spliced(ids, offsets, by_tiktoken)
        seg_ends = offsets[1:] if ends is None else offsets[ends]
        doc = np.fromiter((seg.ends_document for seg in segments), bool, len(segments))
        piece = np.fromiter((seg.ends_piece for seg in segments), bool, len(segments))
        tokens = np.insert(ids, seg_ends[doc], self.doc_token).astype(dtype, copy=False)
        cuts = (seg_ends + np.cumsum(doc) - doc)[piece & ~doc].tolist()  # (the document tokens before each)
        return tokens, cuts, forced, ()

    def decode(self, ids: list) -> str:
        return self.enc.decode(ids)


class HuggingFaceTokenizer:
    """A tokenizer.json that tiktoken cannot run exactly, through Hugging Face tokenizers: each
    piece of text in a call of its own (a batch per chunk, without offsets where this version
    can), special-token text as text. Its cuts are not proven safe: documents are cut only where
    they must be (forced cuts)."""
    safe_cuts, encoder = False, "tokenizers"

    def __init__(self, tok, doc_text: str, name: str, about: dict):
        tok.encode_special_tokens = True  # (special-token text in a document stays text)
        self.tok, self.doc_text, self.doc_token = tok, doc_text, tok.token_to_id(doc_text)
        self.encode_batch = getattr(tok, "encode_batch_fast", tok.encode_batch)
        self.name, self.about = name, about
        self.n_vocab = max(tok.get_vocab(with_added_tokens=True).values()) + 1

    def encode_chunk(self, segments: list, dtype) -> tuple:
        """As TiktokenTokenizer's; a document's own text may encode to the document token's id
        (Unigram's '</s>' may also be an ordinary piece): those tokens are its own."""
        runs = list(runs_to_piece_ends(segments, at_documents=True))
        texts = ["".join(seg.text for seg in run) for run in runs]
        ids, cuts, ends = [], [], []  # (tokenizers gives lists: one array of them all at the end)
        for encoding, run in zip(self.encode_batch(texts, add_special_tokens=False), runs):
            ids += encoding.ids
            if run[-1].ends_document:
                ends.append(len(ids))
                ids.append(self.doc_token)
            elif run[-1].ends_piece:
                cuts.append(len(ids))
        tokens = np.array(ids, dtype=dtype)
        own = np.flatnonzero(tokens == self.doc_token)
        return tokens, cuts, 0, tuple(np.setdiff1d(own, ends).tolist()) if len(own) > len(ends) else ()

    def decode(self, ids: list) -> str:
        return self.tok.decode(ids, skip_special_tokens=False)


def load_tokenizer(config: Config) -> Tokenizer:
    """The tokenizer of --tokenizer (a file) or --encoding (tiktoken's name; gpt2 by default)."""
    if config.tokenizer is None:
        return builtin_tokenizer(config.encoding or "gpt2", config.doc_token)
    path = config.tokenizer
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UserError(f"cannot read --tokenizer {path} ({e.strerror})") from None
    about = dict(file=os.path.abspath(path), sha256=hashlib.sha256(data).hexdigest())
    name = f"{about['file']} (sha256 {about['sha256'][:16]}...)"
    if path.lower().endswith(".json"):
        return json_tokenizer(data, config, name, about)
    return bpe_file_tokenizer(data, config, name, about)


def builtin_tokenizer(name: str, doc_text: Optional[str]) -> TiktokenTokenizer:
    if name not in tiktoken.list_encoding_names():
        raise UserError(f"unknown --encoding '{name}'; valid names: {', '.join(tiktoken.list_encoding_names())} "
                        "(or give a tokenizer's file with --tokenizer)")
    if name in ("gpt2", "r50k_base"):
        enc = shipped_gpt2(name)
    else:
        try:
            enc = tiktoken.get_encoding(name)
        except Exception as e:  # tiktoken raises whatever its download raised
            raise tiktoken_missing_cache(name, e) from None
    default = next((t for t in DOC_TOKENS if t in enc._special_tokens), MARKER)
    doc = doc_text or default  # (the name says a --doc-token other than the default: the bytes differ)
    return TiktokenTokenizer(enc, doc, name if doc == default else f"{name} ({doc})", dict(encoding=name), True)


def shipped_gpt2(name: str):
    """gpt2 or r50k_base (the same ranks, pattern and <|endoftext|> 50256) from the ranks file
    that ships with this script, whatever tiktoken's cache holds: no download, ever."""
    try:
        with open(GPT2_RANKS, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UserError(f"cannot read {GPT2_RANKS} ({e.strerror}), the GPT-2 vocabulary that comes with this "
                        "script: copy the whole folder it came in, not prepare.py alone") from None
    if hashlib.sha256(data).hexdigest() != GPT2_RANKS_SHA256:
        raise UserError(f"{GPT2_RANKS} is damaged (its sha256 is not GPT-2's): copy it again from the project")
    from tiktoken_ext import openai_public  # (its pattern; tiktoken before 0.6 wrote it out inline)
    return tiktoken.Encoding(name, pat_str=getattr(openai_public, "r50k_pat_str", GPT2_PATTERN),
                             mergeable_ranks=read_ranks(data, GPT2_RANKS),
                             special_tokens={MARKER: 50256}, explicit_n_vocab=50257)


def read_ranks(data: bytes, path: str) -> dict:
    """A tiktoken BPE file's ranks: one 'base64-token rank' per line."""
    ranks = {}
    for number, line in enumerate(data.splitlines(), 1):
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except (ValueError, binascii.Error):
            if line.strip():
                raise UserError(f"{path}: line {number:,} is not 'base64-token rank': not a tiktoken "
                                "BPE file (a Hugging Face tokenizer is read from its tokenizer.json)") from None
    check_ranks(ranks, path)
    return ranks


def bpe_file_tokenizer(data: bytes, config: Config, name: str, about: dict) -> TiktokenTokenizer:
    """A tiktoken BPE file (one 'base64-token rank' per line: *.tiktoken, Llama 3's
    tokenizer.model). Llama 3's (128,000 ranks) gets Meta's pattern and special tokens; another
    gets --tokenizer-pattern, and its document token right after its ranks."""
    ranks = read_ranks(data, config.tokenizer)
    if len(ranks) == LLAMA3_RANKS and config.tokenizer_pattern is None:
        pattern, specials = LLAMA3_PATTERN, {t: LLAMA3_RANKS + i for i, t in enumerate(LLAMA3_SPECIALS)}
        doc = config.doc_token or "<|begin_of_text|>"
    elif config.tokenizer_pattern is None:
        raise UserError(f"{config.tokenizer} is a tiktoken BPE file of {len(ranks):,} ranks, not Llama 3's "
                        "(128,000): give its pre-tokenizer regex with --tokenizer-pattern (GPT-2's and "
                        "Llama 3's are in docs/tokenizers.md)")
    else:
        pattern, doc = config.tokenizer_pattern, config.doc_token or MARKER
        specials = {doc: max(ranks.values()) + 1}
    try:
        enc = tiktoken.Encoding(os.path.basename(config.tokenizer), pat_str=pattern, mergeable_ranks=ranks,
                                special_tokens=specials)
    except ValueError as e:  # (the pattern)
        raise UserError(f"--tokenizer-pattern is not a regex tiktoken can run ({e})") from None
    return TiktokenTokenizer(enc, doc, name, dict(about, runs_as="tiktoken"), pattern in SAFE_PATTERNS)


def check_ranks(ranks: dict, path: str):
    """What tiktoken needs of a BPE file (else it panics): tokens, one rank each, every byte."""
    if not ranks:
        raise UserError(f"{path} holds no token: not a tiktoken BPE file")
    if len(set(ranks.values())) < len(ranks):
        raise UserError(f"{path}: two tokens have the same rank; not a tiktoken BPE file")
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise UserError(f"{path} has no token for {len(missing)} of the 256 bytes (byte {missing[0]:#04x} the "
                        "first): tiktoken needs each byte as a token")


def json_tokenizer(data: bytes, config: Config, name: str, about: dict):
    """A Hugging Face tokenizer.json: as a tiktoken Encoding where it is a byte-level BPE that
    tiktoken runs exactly (see tiktoken_parts), else through `tokenizers`."""
    # the encoding threads are the parallelism: tokenizers' own threads in each call made a run
    # ~1.7x slower here (set before its first use)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        spec = json.loads(data)
        tokenizers = importlib.import_module("tokenizers")
        whole, ignored = without_batch_settings(spec, config.tokenizer)
        tok = tokenizers.Tokenizer.from_str(json.dumps(whole) if ignored else data.decode("utf-8"))
        spec, about = whole, dict(about, ignored=ignored) if ignored else about
    except ImportError:
        raise UserError(f"{config.tokenizer} is a Hugging Face tokenizer, read with its 'tokenizers' "
                        "package, which is not installed; run: pip install tokenizers") from None
    except Exception as e:  # (tokenizers raises its own kinds)
        raise UserError(f"{config.tokenizer} is not a tokenizer.json that Hugging Face tokenizers reads "
                        f"({str(e)[:200]})") from None
    if not hasattr(tok, "encode_special_tokens"):
        raise UserError("this version of tokenizers cannot encode special-token text as text; "
                        "run: pip install -U tokenizers")
    special = [t["content"] for t in spec.get("added_tokens", []) if t.get("special")]
    doc = config.doc_token or next((t for t in DOC_TOKENS if t in special), None)
    if doc not in special:  # (an added token that is not special is text a document may hold)
        raise UserError(f"{config.tokenizer} has no special token {repr(doc) if doc else ' or '.join(DOC_TOKENS)} "
                        f"to separate documents (its special tokens: {', '.join(special[:8]) or 'none'}); "
                        "name one with --doc-token")
    tok.encode_special_tokens = True
    parts = tiktoken_parts(spec)
    enc = parts and tiktoken_encoding(os.path.basename(config.tokenizer), parts)
    if enc:
        runner = TiktokenTokenizer(enc, doc, name, dict(about, runs_as="tiktoken"), parts[1] in SAFE_PATTERNS,
                                   parts[3], parts[3] and nfc_unlike())
        if runs_alike(enc, tok, parts[0], runner.normal_form if parts[3] else None):
            return runner
    return HuggingFaceTokenizer(tok, doc, name, dict(about, runs_as="tokenizers"))


def without_batch_settings(spec: dict, path: str) -> tuple:
    """spec without what a tokenizer.json may be saved with for batches of model inputs, said
    in one warning: padding (pad ids between documents), truncation (documents cut short) and
    BPE dropout (random merges), and the names of those it had. Each document is encoded whole,
    and the same in every run."""
    model = spec.get("model") or {}
    found = [name for name, on in (("padding", spec.get("padding")), ("truncation", spec.get("truncation")),
                                   ("BPE dropout", model.get("dropout"))) if on]
    if not found:
        return spec, found
    print(f"warning: {path} is saved with {' and '.join(found)}, which this script ignores: each document is "
          "encoded whole, and the same in every run", file=sys.stderr)
    model = dict(model, dropout=None) if "dropout" in model else model
    return dict(spec, padding=None, truncation=None, model=model), found


def tiktoken_encoding(name: str, parts: tuple):
    """A tiktoken Encoding of tiktoken_parts' answer; None where tiktoken cannot run its regex."""
    ranks, pattern, specials, _ = parts
    try:
        return tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)
    except ValueError:
        return None


def runs_alike(enc, tok, ranks: dict, normal_form: Optional[Callable]) -> bool:
    """Whether tiktoken gives the ids tokenizers gives, on SAMPLE and on the text of every token
    (tiktoken takes a whole piece that is a token, and merges any pair whose bytes are a token;
    tokenizers may do neither: ~1 s for Llama 3's 128,000 tokens), merges alike on every token's
    bytes (merges_alike); normal_form: the text's normalization (TiktokenTokenizer.normal_form)."""
    if not merges_alike(tok, ranks):
        return False
    texts = [SAMPLE]
    for token in ranks:
        try:
            texts.append(token.decode("utf-8"))
        except UnicodeDecodeError:
            continue  # (a part of a character)
    want = [e.ids for e in getattr(tok, "encode_batch_fast", tok.encode_batch)(texts, add_special_tokens=False)]
    texts = [normal_form(t) for t in texts] if normal_form else texts
    return all(enc.encode(t, disallowed_special=()) == ids for t, ids in zip(texts, want))


def holds_any(text: str, chars: frozenset) -> bool:
    """Whether text holds one of chars (a hundred or so): by the set in a short text, else by a
    search for each (str's fast search: ~2 ms a million characters; the two cost alike at ~400)."""
    return not chars.isdisjoint(text) if len(text) < 400 else any(c in text for c in chars)


def merges_alike(tok, ranks: dict) -> bool:
    """Whether tiktoken's merges (of any two neighbours whose bytes are a token, by rank) make
    what tokenizers' merges make, in every text. Where the two first differ, tiktoken merges two
    neighbours into a token tokenizers has no merge for, after merges within that token's
    bytes, which happen so in its bytes alone: tokenizers' merges (without taking a whole word
    that is a token, ignore_merges) then leave the token's bytes as those two parts. So no
    token's bytes may end as exactly two parts, be they valid UTF-8 or part of a character (e.g.
    'é' is c3 a9, a token a9 c3 then c3 a9 c3 from c3a9 + c3 gives [c3, a9c3] alone, and
    tiktoken [c3a9c3, a9] on 'éé' where tokenizers gives [c3, a9c3, a9]). (Merges that make one
    token, met where they overlap, are taken in rank order by tokenizers and from the left by
    tiktoken: not compared here.)"""
    model, alphabet = tok.model, {b: c for c, b in byte_level_alphabet().items()}
    words = ["".join(alphabet[token[i:i + 1]] for i in range(len(token))) for token in ranks]
    whole = getattr(model, "ignore_merges", False)  # (tokenizers 0.19 and later)
    bare = type(tok)(model)  # (no normalizer, no pre-tokenizer: each word is one; the model is shared)
    if whole:
        model.ignore_merges = False
    try:
        parts = getattr(bare, "encode_batch_fast", bare.encode_batch)(words, add_special_tokens=False)
    finally:
        if whole:
            model.ignore_merges = True
    return all(len(p.ids) != 2 for p in parts)


def nfc_unlike() -> Optional[tuple]:
    """(them, tokenizers' NFC) for the characters whose NFC in tokenizers'
    tables differs from Python's (their Unicode versions differ: 99 in tokenizers 0.23, whose
    tables predate Unicode 11, against Python 3.11's Unicode 14), or None. NFC is made from each
    character's combining class and decomposition: tokenizers' NFD and Python's are compared on
    each character of NFC_PROBE_RANGES after U+0345 (the highest class: a character of another
    goes before it), each in a line of its own; a differing one's parts count too. ~50 ms."""
    from tokenizers.normalizers import NFC, NFD
    codes = np.concatenate([np.arange(lo, hi, dtype="<u4") for lo, hi in NFC_PROBE_RANGES])
    codes = codes[codes != ord("\n")]
    probe = np.full((len(codes), 3), [0x345, 0, ord("\n")], dtype="<u4")
    probe[:, 1] = codes
    text, nfd = probe.tobytes().decode("utf-32-le"), NFD().normalize_str
    theirs, ours = nfd(text), unicodedata.normalize("NFD", text)
    if theirs == ours:
        return None
    unlike = {chr(c) for c, a, b in zip(codes.tolist(), theirs.split("\n"), ours.split("\n")) if a != b}
    unlike |= {part for c in unlike for part in nfd(c) + unicodedata.normalize("NFD", c)}
    return frozenset(unlike), NFC().normalize_str


def regex_alike(pattern: str) -> bool:
    """Whether a Split regex is made only of constructs that mean the same in tokenizers'
    Oniguruma and tiktoken's fancy-regex (REGEX_TOKEN: e.g. '$' is the end of a line in the one,
    of the text in the other), (?i: only around characters that are not letters, or ASCII; and
    matches every character (regex_covers)."""
    pos, nocase, last = 0, [], "alt"
    # each open group's alternatives (the pattern's first), each alternative's items: [the atom's
    # text, or None for a group; how often it must match at least; whether it takes a character]
    groups, looks = [[[]]], [False]
    while pos < len(pattern):
        m = REGEX_TOKEN.match(pattern, pos)
        if m is None:
            return False
        kind, pos = m.lastgroup if m.lastgroup in ("open", "close", "alt", "quantifier") else "atom", m.end()
        if kind == "quantifier" and last not in ("atom", "close") or kind == "close" and not nocase:
            return False  # (a lazy or possessive quantifier, or an unbalanced parenthesis)
        if True in nocase and kind == "atom" and not (m.group("char") and (m.group().isascii() or
                                                                           not m.group()[-1].isalpha())):
            return False
        if kind == "alt":
            groups[-1].append([])
        elif kind == "atom":
            groups[-1][-1].append([m.group(), 1, True])
        elif kind == "quantifier":  # (of the last atom or group)
            groups[-1][-1][-1][1] = 1 if m.group() == "+" else int(re.sub(r"\D.*", "", m.group()[1:]) or 0)
        elif kind == "open":
            nocase.append(bool(m.group("nocase")) or True in nocase[-1:])
            groups.append([[]])
            looks.append(m.group() in ("(?=", "(?!"))
        else:  # (a group takes a character where each of its alternatives needs an item that does)
            nocase.pop()
            alternatives, look = groups.pop(), looks.pop()
            groups[-1][-1].append([None, 1, not look and all(any(a[1] and a[2] for a in alt) for alt in alternatives)])
        last = kind
    return not nocase and regex_covers(groups[0])


def regex_covers(alternatives: list) -> bool:
    """Whether a match starts at every character (tiktoken leaves out text no match takes,
    tokenizers keeps it as a piece of its own), alternatives: the top ones' items (regex_alike).
    Shown where no alternative matches empty text (each needs an item that takes a character),
    and each kind of character is in the atom of an alternative that needs that atom once and
    nothing else: at such a character it matches. The kinds: each general category (of the
    characters the pattern does not name, whitespace apart), each whitespace character, each
    character the pattern names; a range makes a kind's membership unknown: not shown."""
    needed = [[a for a in alt if a[1]] for alt in alternatives]
    sure = [atoms[0][0] for atoms in needed if len(atoms) == 1 and atoms[0][1] == 1 and atoms[0][0] is not None]
    named = {regex_char(c) for atom in sure for c in re.findall(REGEX_CHAR + r"|[^\\]", atom)} | set(WHITESPACE_CHARS)
    kinds = [(unicodedata.category(c), c) for c in named] + [(cat, None) for cat in GENERAL_CATEGORIES]
    return all(any(a[2] for a in atoms) for atoms in needed) and \
        all(any(regex_member(atom, kind) for atom in sure) for kind in kinds)


def regex_char(text: str) -> str:
    """The character of REGEX_CHAR's text (or of a character itself)."""
    return {"\\r": "\r", "\\n": "\n", "\\t": "\t"}.get(text, text[-1])


def regex_member(atom: str, kind: tuple) -> Optional[bool]:
    """Whether a character of kind (its general category, and itself, or None for one the
    pattern does not name) is in an atom of REGEX_TOKEN; None where it may or may not be (a range)."""
    category, char = kind
    if atom[:1] == "[":
        items = [regex_member(m.group(), kind) for m in re.finditer(REGEX_CLASS_ITEM, atom[2 if atom[1] == "^" else 1:-1])]
        inside = True if True in items else None if None in items else False
        return inside if atom[1] != "^" or inside is None else not inside
    if atom in ("\\s", "\\S"):
        return (char is not None and char in WHITESPACE_CHARS) == (atom == "\\s")
    if atom[:2] in ("\\p", "\\P"):
        name = atom[3:-1]
        return (category == name or len(name) == 1 and category[0] == name) == (atom[1] == "p")
    ends = [regex_char(e) for e in re.findall(REGEX_CHAR + r"|[^\\]", atom)]
    if len(ends) == 3:  # (a range: of characters not named, it may hold some)
        return None if char is None else ends[0] <= char <= ends[2]
    return char == ends[0]


def byte_level_alphabet() -> dict:
    """GPT-2's byte-level alphabet: the character that stands for each byte in a vocabulary."""
    shown = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in shown]
    return {chr(c): bytes([c]) for c in shown} | {chr(256 + i): bytes([b]) for i, b in enumerate(others)}


def tiktoken_parts(spec: dict) -> Optional[tuple]:
    """(mergeable ranks, pattern, special tokens, Unicode normal form or None) of a
    tokenizer.json that tiktoken runs as `tokenizers` does, else None: a byte-level BPE (no
    normalizer but NFC, as Qwen2's; no byte fallback, no subword prefixes) whose
    pre-tokenizer is GPT-2's ByteLevel regex, or one Split regex then ByteLevel; whose merges
    make tokens in the order of their ids (tiktoken merges by rank); whose added tokens are all
    special."""
    model, normalizer = spec.get("model") or {}, spec.get("normalizer")
    added = spec.get("added_tokens", [])
    pattern = byte_level_pattern(spec.get("pre_tokenizer") or {})
    if normalizer not in (None, {"type": "NFC"}) or pattern is None or not all(t.get("special") for t in added) or \
            model.get("type") != "BPE" or any(model.get(k) for k in ("byte_fallback", "continuing_subword_prefix",
                                                                     "end_of_word_suffix", "dropout")):
        return None
    specials = {t["content"]: t["id"] for t in added}
    ranks = byte_level_ranks(model, set(specials.values()))
    if ranks is None or any(bytes([b]) not in ranks for b in range(256)):  # (tiktoken needs every byte)
        return None
    return ranks, pattern, specials, normalizer and "NFC"


def byte_level_pattern(pre: dict) -> Optional[str]:
    """The regex of a byte-level pre-tokenizer that tiktoken can run: GPT-2's ByteLevel, or one
    Split regex (isolated) then ByteLevel without its regex; None for any other."""
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    if not steps or steps[-1].get("type") != "ByteLevel" or steps[-1].get("add_prefix_space"):
        return None
    if len(steps) == 1 and steps[0].get("use_regex", True):
        return GPT2_PATTERN
    split = steps[0]
    if len(steps) == 2 and split.get("type") == "Split" and split.get("behavior") == "Isolated" and \
            not split.get("invert") and "Regex" in split.get("pattern", {}) and not steps[1].get("use_regex", True) \
            and regex_alike(split["pattern"]["Regex"]):
        return split["pattern"]["Regex"]
    return None


def byte_level_ranks(model: dict, special_ids: set) -> Optional[dict]:
    """A byte-level BPE's vocabulary as tiktoken's ranks (bytes -> id), without the special
    tokens (GPT-2's files also hold <|endoftext|> in it); None unless its merges make tokens in
    the order of their ids."""
    vocab = {token: rank for token, rank in model["vocab"].items() if rank not in special_ids}
    alphabet = byte_level_alphabet()
    try:
        ranks = {b"".join(alphabet[c] for c in token): rank for token, rank in vocab.items()}
    except KeyError:
        return None  # (a token outside the byte-level alphabet)
    merges = [m.split(" ") if isinstance(m, str) else m for m in model.get("merges", [])]
    made = [vocab.get(a + b, -1) for a, b in merges]
    return ranks if len(ranks) == len(vocab) and made == sorted(made) and -1 not in made else None


_local, _taken, _taking = threading.local(), set(), threading.Lock()


def thread_encoding(enc):
    """Each worker thread's own Encoding (threads sharing one slow each other down: ~1.3x more
    CPU per token): the first thread takes enc itself, the others a copy (~10 MiB each)."""
    if getattr(_local, "of", None) is not enc:
        with _taking:
            first = id(enc) not in _taken
            _taken.add(id(enc))
        _local.of, _local.enc = enc, enc if first else tiktoken.Encoding(
            enc.name, pat_str=enc._pat_str, mergeable_ranks=enc._mergeable_ranks, special_tokens=enc._special_tokens)
    return _local.enc


@functools.lru_cache(maxsize=None)
def installed(name):
    """The version of an installed package, as a tuple; None when pip does not know it."""
    try:
        return version_tuple(version(name))
    except PackageNotFoundError:
        return None


def encode_array(enc, text, allowed=()):
    """Token ids of text as a uint32 array; special tokens' text is ordinary text, except the
    allowed ones. encode_to_numpy where it keeps allowed_special (tiktoken 0.11+: 0.9 and 0.10
    allow every special token); before, a list, converted (slower, the same tokens)."""
    try:
        if (installed("tiktoken") or (99,)) >= (0, 11, 0):
            return enc.encode_to_numpy(text, allowed_special=set(allowed), disallowed_special=())
        return np.array(enc.encode(text, allowed_special=set(allowed), disallowed_special=()), dtype=np.uint32)
    except ValueError as e:  # its regex engine's backtracking limit (a look-around over a very long word)
        raise EncodeFailed(str(e)) from None
    except BaseException as e:  # a panic in tiktoken's Rust code is pyo3's PanicException, a BaseException
        if not isinstance(e, RuntimeError) and type(e).__name__ != "PanicException":
            raise
        if (installed("tiktoken") or (99,)) < (0, 8, 0):  # (its stack overflows on a very long word)
            raise UserError(f"tiktoken {version('tiktoken')} failed on the text ({e}): versions before 0.8 fail "
                            "on runs of a million characters without whitespace; run: pip install -U tiktoken") from None
        raise EncodeFailed(f"tiktoken failed: {e}") from None


def long_space_cuts(text):
    """Where text is cut so that no whitespace run that tiktoken gets is longer than LONG_SPACE:
    inside each longer run, every LONG_SPACE characters from its start (forced cuts; tiktoken's
    regex fails on runs of about a million). Such a run holds a character at a multiple of
    LONG_SPACE // 2 within LONG_SPACE // 2 of its start, so only those characters are looked at."""
    cuts, step, end = [], LONG_SPACE // 2, 0
    for k in range(step, len(text), step):
        if k < end or not text[k].isspace():
            continue
        start, end = k, WHITESPACE.match(text, k).end()
        while start > 0 and text[start - 1].isspace():
            start -= 1
        cuts += range(start + LONG_SPACE, end, LONG_SPACE)
    return cuts


def encode_text(enc, text, allowed=()):
    """encode_array of text, in parts where long_space_cuts cuts it; and how many cuts."""
    cuts = long_space_cuts(text)
    if not cuts:
        return encode_array(enc, text, allowed), 0
    parts = [text[lo:hi] for lo, hi in zip([0, *cuts], [*cuts, len(text)])]
    return np.concatenate([encode_array(enc, part, allowed) for part in parts]), len(cuts)


# --- the fast path: splintr-rs (a Rust BPE with a regex engine of its own), where it is installed.
# tiktoken stays the reference: splintr-rs encodes a vocabulary only in a release the tests cover
# (SPLINTR_VERSIONS) and after it has encoded check_text exactly as tiktoken does, at start. It
# encodes each document's text on its own, with no special tokens (their text is text; the
# document token is put in by encode_fast), cut where tiktoken's is (long_space_cuts): the same
# tokens either way, so the fingerprint leaves the encoder out.

# its own copy of each pattern (its engine has no possessive quantifiers): by built-in
# encoding's name, or by a tokenizer file's pattern
SPLINTR_PATTERNS = {"gpt2": "GPT2_PATTERN", "r50k_base": "GPT2_PATTERN", "p50k_base": "GPT2_PATTERN",
                    "p50k_edit": "GPT2_PATTERN", "cl100k_base": "CL100K_BASE_PATTERN",
                    "o200k_base": "O200K_BASE_PATTERN", "o200k_harmony": "O200K_BASE_PATTERN",
                    GPT2_PATTERN: "GPT2_PATTERN", LLAMA3_PATTERN: "LLAMA3_PATTERN", QWEN2_PATTERN: "QWEN2_PATTERN"}
SPLINTR_CACHE_CHARS = 1 << 22  # splintr-rs's cache of pieces is emptied after this much text (its memory)
NON_SPACE = re.compile(r"\S*")
SPLINTR_INSTALL = "pip install splintr-rs==0.22.0 (wheels for Python 3.10 or newer)"
# what fast encoders got wrong: whitespace runs of many kinds and lengths (one ends the text),
# contractions after unusual separators, digits, scripts, emoji, replacement characters;
# check_text adds the vocabulary's special tokens' text and a sample of all of Unicode
CHECK_SPACES = [" ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u1680",
                "\u180e", "\u2000", "\u200a", "\u200b", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000",
                "\ufeff", " \n", "\n ", "\t "]
CHECK_LENGTHS = [1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 64, 65, 127, 128, 129, 255, 256, 257, 500, 501, 1025]
CHECK_AFTER = ["word", "'s", "12", "!", "中", "\n", " x", "'LL", "\ufffd", ""]
CHECK_SEPARATORS = ["", " ", "\u180e", "\u200b", "\ufeff", "\u3000", "\xa0", "\x0b", "\x85", "\u2028", "\u2060",
                    "-", "_", "'", "\n", "\t", "1", "中", "é", "\ufffd", "🙂"]
CHECK_CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'M", "'LL", "'D",
                      "\u2019s", "'x", "''s", "'", "'ll've"]
CHECK_WORDS = ["1", "12", "123", "1234", "12345", "1234567890123", "3.14159", "1,000,000", "٣٤٥٦", "１２３４", "²³",
               "½", "Ⅻ", "𝟙𝟚𝟛", "中文字符", "日本語のテキスト", "한국어", "текст", "Ελληνικά", "עברית", "العربية",
               "हिन्दी", "ไทย", "e\u0301", "a\u0308\u0301", "🙂", "👍🏽", "👨\u200d👩\u200d👧", "🏳️\u200d🌈",
               "\ufffd", "\ufffd\ufffd", "x\ufffdy", "\x00", "\x01\x7f", "<|endo", "|>", "ÉCOLE", "naïve", "__init__",
               "don't", "I'M", "http://x.io/a?b=1", "    def f(x):\n\treturn x**2"]


def check_text(enc) -> str:
    """The text splintr-rs must encode as tiktoken does for enc's vocabulary (~160,000 characters)."""
    runs = [kind * n + CHECK_AFTER[i % len(CHECK_AFTER)]
            for i, (kind, n) in enumerate((k, n) for k in CHECK_SPACES for n in CHECK_LENGTHS)]
    contractions = [sep + c + after for sep in CHECK_SEPARATORS for c in CHECK_CONTRACTIONS for after in ("", " ", "a")]
    words = [w + sep for w in CHECK_WORDS for sep in CHECK_SEPARATORS[:8]]
    unicode = [chr(c) for c in range(0, sys.maxunicode + 1, 97) if not 0xD800 <= c <= 0xDFFF]
    specials = sorted(enc._special_tokens)
    return "".join(runs + contractions + words + [" ".join(unicode), "a".join(unicode), " ".join(specials),
                                                  "".join(specials), " end   "])


def ranks_file(ranks: dict) -> bytes:
    """A tiktoken BPE file of ranks (what splintr-rs reads)."""
    return b"".join(base64.b64encode(token) + b" %d\n" % rank for token, rank in ranks.items())


class SplintrSpec(NamedTuple):
    vocab: bytes                # the ranks, as a tiktoken BPE file
    pattern: str                # splintr-rs's copy of the encoding's pattern
    spare: list                 # SplintrEncodings no chunk is using (the first: the check's)


class SplintrEncoding:
    """A splintr-rs tokenizer without special tokens: encode is tiktoken's encode_ordinary."""

    def __init__(self, spec: SplintrSpec):
        self.tok = importlib.import_module("splintr").Tokenizer.from_bytes(spec.vocab, spec.pattern, {})
        self.chars = 0  # encoded since its cache was emptied

    def encode(self, text):
        """Token ids of text as a uint32 array."""
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list) -> tuple:
        """The token ids of all the texts, one after the other, as a uint32 array, and where each
        text's begin and the last's end (len(texts) + 1 of them). Its cache of pieces is emptied
        once it has encoded SPLINTR_CACHE_CHARS since: it keeps pieces of any length, and would
        grow with the input (bench/memory.py --format distinct-words); emptying it holds the GIL."""
        ids, offsets = self.tok.encode_batch_flat(texts)
        self.chars += sum(map(len, texts))
        if self.chars >= SPLINTR_CACHE_CHARS:
            self.tok.clear_cache()
            self.chars = 0
        return np.frombuffer(ids, dtype="<u4"), np.frombuffer(offsets, dtype="<u8").astype(np.int64)


def long_word(text) -> bool:
    """Whether text may hold a run of LONG_WORD characters without whitespace (then its piece of
    tokens would take splintr-rs ~70 bytes per byte at once): it does if a run of LONG_WORD // 2
    starts at a multiple of LONG_WORD // 2, which every run of LONG_WORD or more holds."""
    step = LONG_WORD // 2
    return any(NON_SPACE.match(text, k).end() - k >= step for k in range(0, len(text) - step + 1, step))


def spliced(ids, offsets, tokens_at: dict) -> tuple:
    """ids and offsets with the tokens of tokens_at (text index -> tokens) put in for those
    texts (each was encoded empty)."""
    at = sorted(tokens_at)
    parts = np.split(ids, offsets[at])
    ids = np.concatenate([p for pair in zip(parts, [tokens_at[i] for i in at] + [ids[:0]]) for p in pair])
    grown = np.zeros(len(offsets), np.int64)
    grown[[i + 1 for i in at]] = [len(tokens_at[i]) for i in at]
    return ids, offsets + np.cumsum(grown)


def spare_splintr(spec: SplintrSpec) -> SplintrEncoding:
    """A splintr-rs tokenizer for one chunk, used by one thread at a time: one that an earlier
    chunk (or the check) put back, else a new one (~15 MiB). As many are made as chunks are
    encoded at once: one per worker thread."""
    try:
        return spec.spare.pop()
    except IndexError:
        return SplintrEncoding(spec)


def use_splintr(tok, wanted: str):
    """tok, set to encode with splintr-rs where --encoder lets it (auto, splintr) and
    splintr_trouble finds none; else with tiktoken, told in one line where splintr-rs is
    installed (auto), refused in one sentence for --encoder splintr."""
    if wanted == "tiktoken":
        return tok
    why = splintr_trouble(tok)
    if why and wanted == "splintr":
        raise UserError(f"--encoder splintr: {why}; run with --encoder tiktoken (the same tokens)")
    if why and installed("splintr-rs") and isinstance(tok, TiktokenTokenizer):
        print(f"note: encoding with tiktoken: {why}", file=sys.stderr)
    return tok


_checked = {}  # (a process that runs again, as the tests do, checks each vocabulary once)


def splintr_trouble(tok) -> Optional[str]:
    """Why splintr-rs may not encode for tok, in a phrase; None where it may (tok.fast set)."""
    found = installed("splintr-rs")
    if not isinstance(tok, TiktokenTokenizer):
        return "splintr-rs runs tiktoken's vocabularies, and this tokenizer runs through Hugging Face tokenizers"
    if found is None:
        return f"splintr-rs is not installed; {SPLINTR_INSTALL}"
    low, high = (".".join(map(str, v)) for v in SPLINTR_VERSIONS)
    if not SPLINTR_VERSIONS[0] <= found < SPLINTR_VERSIONS[1]:
        return f"splintr-rs {version('splintr-rs')} is not a release the tests cover (those from {low} and " \
            f"before {high}); {SPLINTR_INSTALL}"
    pattern = SPLINTR_PATTERNS.get(tok.about.get("encoding") or tok.enc._pat_str)
    if pattern is None:
        return f"splintr-rs has no copy of the pattern of {tok.name}"
    key = (tok.name, json.dumps(tok.about, sort_keys=True), tok.enc._pat_str)
    if key not in _checked:
        _checked[key] = splintr_check(tok, pattern)
    spec, why = _checked[key]
    if spec:
        tok.fast, tok.encoder = spec, f"splintr-rs {version('splintr-rs')}"
    return why


def splintr_check(tok, pattern: str) -> tuple:
    """(SplintrSpec, None) where splintr-rs loads tok's vocabulary with its copy of the pattern
    and encodes check_text as tiktoken does; else (None, why)."""
    ours = f"splintr-rs {version('splintr-rs')}"
    try:
        spec = SplintrSpec(ranks_file(tok.enc._mergeable_ranks), getattr(importlib.import_module("splintr"), pattern), [])
        text, fast = check_text(tok.enc), SplintrEncoding(spec)
        same = fast.encode(text).tolist() == tok.enc.encode_ordinary(text)
    except Exception as e:  # (a package with errors of its own kinds: whatever it raises, tiktoken runs)
        return None, f"{ours} does not load {tok.name} ({type(e).__name__}: {str(e)[:100]})"
    if not same:
        return None, f"{ours} does not encode the check text as tiktoken does for {tok.name}"
    spec.spare.append(fast)
    return spec, None


def runs_to_piece_ends(segments, at_documents=False):
    """segments grouped into runs, each ending at a piece end that is not a document end (or,
    at_documents, at any piece end)."""
    run = []
    for seg in segments:
        run.append(seg)
        if seg.ends_piece and (at_documents or not seg.ends_document):
            yield run
            run = []
    if run:
        yield run
