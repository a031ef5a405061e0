"""What the property tests draw from, in one place: the examples' settings, and text that
holds what breaks tokenizers and cuts (every kind of whitespace, markers whole and in part,
other special tokens, contractions, digits, scripts, emoji, long lines and space runs)."""
import os

from hypothesis import HealthCheck, settings, strategies as st

# (fewer where time is short: the run with the oldest supported versions, tests/test_platforms.py)
SETTINGS = settings(max_examples=int(os.environ.get("EXACT_EXAMPLES", 60)), deadline=None,
                    suppress_health_check=list(HealthCheck))
WHITESPACE = [" ", "  ", "\n", "\n\n", "\t", "\r\n", "\r", "\u3000", "\xa0", "\x0b", "\x0c",
              "\x1c", "\x85", "\u2028", " \n ", "\n\n\n"]
ATOMS = st.one_of(
    st.sampled_from(WHITESPACE),
    st.sampled_from(["word", "Hello", "it's", "don't", "x", "ÉCOLE", "naïve", "под", "中文字符",
                     "日本語", "🙂", "👍🏽", "1234567", "3.14", "__init__", "—", "...", "é", "\x00",
                     "<|endoftext|>", "<|endoftext|><|endoftext|>", "<|endo", "|>", "'s", "'ll",
                     "<|fim_prefix|>", "<|endofprompt|>"]),  # cl100k's other special tokens
    st.text(max_size=12),
    st.text(alphabet="ab \n", min_size=40, max_size=300),  # long lines, long space runs
)
TEXTS = st.lists(ATOMS, max_size=40).map("".join)
DOCS = st.lists(TEXTS.map(str.strip).filter(lambda t: t and "<|endoftext|>" not in t),
                min_size=1, max_size=25)
# Text with no safe cut for a long way (runs of CJK without punctuation, of whitespace, of
# punctuation; a few words and markers): the txt window holds much it cannot use yet.
NO_CUT_TEXTS = st.lists(st.one_of(
    st.text(alphabet="中文字符日本語", min_size=20, max_size=400),
    st.text(alphabet=" \n\t\u3000", min_size=20, max_size=300),
    st.text(alphabet="，。！…", min_size=1, max_size=40),
    st.sampled_from(["word", " x ", "<|endoftext|>", "\n\n<|endoftext|>\n\n", "<|endo", "字 "]),
), min_size=1, max_size=10).map("".join)
