"""Peak RSS of real prepare.py runs on generated inputs of two sizes (a benchmark, run by hand).

    python bench/memory.py                   # ~100 MB and ~1 GB txt, default settings
    python bench/memory.py --sizes 100 1000 --format parquet --workdir /tmp/bench
    python bench/memory.py --format jsonl.gz       # sizes: MB of text before compression
    python bench/memory.py --format long-rows --sizes 50 300    # the shapes of edge cases:
    python bench/memory.py --format whitespace --sizes 16 64    #   parquet rows of 500 KB, a run of
    python bench/memory.py --format long-line --sizes 16 64     #   spaces in a txt document, one JSON line,
    python bench/memory.py --format tiny-json --sizes 10 40     #   documents of one character (JSON Lines
    python bench/memory.py --format tiny-txt --sizes 15 60      #   and txt), parquet rows that repeat one
    python bench/memory.py --format dict-parquet --sizes 30 300 #   100 KB document (dictionary-encoded: the
    python bench/memory.py --format one-row --sizes 16 64       #   file is tiny), one parquet row
    python bench/memory.py --format distinct-words --sizes 100 300  # words that never repeat (an encoder's
                                                                     # cache of pieces at its fullest)

Prints each run's peak memory (PSS of the script and its reader process, sampled) and the
ratio large/small. Target: <= 256 MiB at default settings and a ratio <= 1.10: memory must not
grow with the input.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import psutil

import corpus

HERE = os.path.dirname(os.path.abspath(__file__))


def write_long_rows(path, n_bytes):
    """Parquet rows of ~500 KB each (book-like documents), 50 rows per row group, pages of 4 rows
    (a parquet page is read whole: pyarrow's default pages of 1,024 rows would hold 500 MB)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    paragraph = " ".join(corpus.documents(20_000, seed=5))[:10_000]
    rows = [" ".join(f"{paragraph} ({i}.{j})" for j in range(50)) for i in range(max(1, n_bytes // 500_000))]
    pq.write_table(pa.table({"text": rows}), path, row_group_size=50, write_batch_size=4)


def write_whitespace(path, n_bytes):
    """One txt document holding a run of n_bytes spaces, and a second document."""
    with open(path, "w") as f:
        f.write("hello world" + " " * n_bytes + " end\n<|endoftext|>\nsecond document")


def write_long_line(path, n_bytes):
    """One JSON line of n_bytes of words, and a short one."""
    with open(path, "w") as f:
        f.write(json.dumps({"text": "word " * (n_bytes // 5)}) + "\n" + json.dumps({"text": "short"}) + "\n")


def write_tiny_json(path, n_bytes):
    """JSON lines of one-character documents."""
    line = json.dumps({"text": "a"}) + "\n"
    with open(path, "w") as f:
        for _ in range(n_bytes // len(line) // 10_000):
            f.write(line * 10_000)


def write_tiny_txt(path, n_bytes):
    """A txt file of one-character documents."""
    with open(path, "w") as f:
        for _ in range(n_bytes // len("a<|endoftext|>") // 10_000):
            f.write("a<|endoftext|>" * 10_000)


def write_dict_parquet(path, n_bytes):
    """Parquet rows that all hold one 100 KB document: dictionary encoding stores it once, so the
    file is tiny and its footer counts far less text than its rows hold."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    doc = " ".join(corpus.documents(200_000, seed=7))[:100_000]
    pq.write_table(pa.table({"text": [doc] * max(1, n_bytes // 100_000)}), path)


def write_one_row(path, n_bytes):
    """A parquet file of one row of n_bytes of text."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    paragraph = " ".join(corpus.documents(20_000, seed=5))[:10_000]
    pq.write_table(pa.table({"text": [(paragraph * (n_bytes // len(paragraph) + 1))[:n_bytes]]}), path)


def write_distinct_words(path, n_bytes):
    """txt documents of random words of 1,000 letters, none twice: every piece is new to a cache
    of pieces, and long."""
    import random
    import string
    rng, letters = random.Random(7), string.ascii_letters
    with open(path, "w") as f:
        for _ in range(max(1, n_bytes // 100_000)):
            f.write(" ".join("".join(rng.choices(letters, k=1000)) for _ in range(100)) + corpus.EOT_LAYOUT)


WRITE = {"txt": corpus.write_txt, "parquet": corpus.write_parquet, "jsonl.gz": corpus.write_jsonl,
         "long-rows": write_long_rows, "whitespace": write_whitespace, "long-line": write_long_line,
         "tiny-json": write_tiny_json, "tiny-txt": write_tiny_txt, "dict-parquet": write_dict_parquet,
         "one-row": write_one_row, "distinct-words": write_distinct_words}
SUFFIX = {"long-rows": "parquet", "whitespace": "txt", "long-line": "jsonl", "tiny-json": "jsonl", "tiny-txt": "txt",
          "dict-parquet": "parquet", "one-row": "parquet", "distinct-words": "txt"}
SCRIPT = os.path.join(os.path.dirname(HERE), "data", "fineweb", "prepare.py")


def peak_rss_mib(args, interval=0.05, script=SCRIPT):
    """Runs prepare.py; returns (peak memory of the whole process tree in MiB, exit code,
    stderr). The tree is the script and its reader process, which share some pages: each
    process counts its proportional share (PSS), so the sum is the memory they really take."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, script, *map(str, args)], stdout=subprocess.DEVNULL, stderr=err)
        root, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            try:
                peak = max(peak, sum(p.memory_full_info().pss for p in [root, *root.children(recursive=True)]))
            except psutil.NoSuchProcess:
                pass
            time.sleep(interval)
        err.seek(0)
        return peak / 2 ** 20, proc.returncode, err.read().decode()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000], help="input sizes in MB")
    p.add_argument("--format", choices=sorted(WRITE), default="txt")
    p.add_argument("--workdir", default="/tmp/prepare-bench")
    p.add_argument("--script", default=SCRIPT, help="the prepare.py to measure (e.g. an older version, "
                                                     "for a before/after)")
    p.add_argument("extra", nargs="*", help="more prepare.py options, after --")
    a = p.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    results = []
    for mb in a.sizes:
        path = os.path.join(a.workdir, f"{a.format}_{mb}MB.{SUFFIX[a.format]}" if a.format in SUFFIX
                            else f"corpus_{mb}MB.{a.format}")
        if not os.path.exists(path):
            print(f"generating {path} ...", flush=True)
            WRITE[a.format](path, mb << 20)
        out = os.path.join(a.workdir, f"out_{mb}MB_{a.format}")
        t = time.time()
        rss, code, err = peak_rss_mib(["--input", path, "--out-dir", out, "--restart", *a.extra], script=a.script)
        if code:
            sys.exit(f"prepare.py failed:\n{err[-2000:]}")
        results.append(rss)
        print(f"{mb:>6} MB {a.format}: peak memory (PSS) {rss:7.1f} MiB  ({time.time() - t:.0f}s)", flush=True)
    print(f"ratio {a.sizes[-1]} MB / {a.sizes[0]} MB: {results[-1] / results[0]:.3f}")


if __name__ == "__main__":
    main()
