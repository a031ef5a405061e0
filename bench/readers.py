"""The reading stage alone (read, decode, cut into chunks; no encoding) with 1 and 2 reader
processes, for txt, parquet and JSON Lines holding the same documents (a benchmark, run by hand).

    python bench/readers.py                 # a generated ~200 MB corpus, 3 interleaved rounds
    python bench/readers.py --mb 500 --readers 1 2

Each reader process reads whole units (prepare.py's own read_unit) and drops the chunks, as
the reader processes of a run do before they send them. Prints MB/s of input text per kind
and reader count, the ratio of 2 readers to 1 (within each round, the median), and how many
encoding cores one reader keeps busy at a measured per-core encoding rate.
"""
import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import tiktoken

import corpus

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "data", "fineweb"))
import prepare  # noqa: E402


def read_units(paths, units_of_reader):
    opts = prepare.parse_args(["--input", *paths])
    opts.piece_chars = prepare.PIECE_CHARS
    inputs = prepare.open_inputs(paths, "/nonexistent", "text", False)
    units = prepare.plan_units(inputs)
    for u in units_of_reader:
        for _ in prepare.read_unit(inputs, units[u], None, opts):
            pass


def stage(paths, readers):
    """Seconds for `readers` processes to read every unit (unit u to reader u % readers)."""
    n = len(prepare.plan_units(prepare.open_inputs(paths, "/nonexistent", "text", False)))
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=read_units, args=(paths, list(range(r, n, readers)))) for r in range(readers)]
    t = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return time.perf_counter() - t


def encode_rate(docs, seconds=5.0):
    """Bytes of text per second one core encodes (a thread, documents joined, as prepare.py)."""
    enc = tiktoken.get_encoding("gpt2")
    text, done, t = "<|endoftext|>".join(docs[:2000]), 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        enc.encode(text, allowed_special={"<|endoftext|>"})
        done += len(text.encode())
    return done / (time.perf_counter() - t)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mb", type=int, default=200)
    p.add_argument("--readers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workdir", default="/tmp/prepare-bench")
    a = p.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    docs = list(corpus.documents(a.mb << 20, seed=0))
    files = {"txt": os.path.join(a.workdir, f"readers_{a.mb}MB.txt"),
             "parquet": os.path.join(a.workdir, f"readers_{a.mb}MB.parquet"),
             "jsonl": os.path.join(a.workdir, f"readers_{a.mb}MB.jsonl")}
    if not all(map(os.path.exists, files.values())):
        print("writing the corpus ...", flush=True)
        with open(files["txt"], "w", encoding="utf-8") as f:
            f.writelines(d + corpus.EOT_LAYOUT for d in docs)
        pq.write_table(pa.table({"text": docs}), files["parquet"], row_group_size=1000)
        with open(files["jsonl"], "w", encoding="utf-8") as f:
            f.writelines(json.dumps({"text": d}) + "\n" for d in docs)
    text_mb = sum(len(d.encode()) for d in docs) / 1e6
    rates = {(k, r): [] for k in files for r in a.readers}
    for round_ in range(a.rounds):
        order = [(k, r) for k in files for r in a.readers]
        for k, r in order[::-1 if round_ % 2 else 1]:
            seconds = stage([files[k]], r)
            rates[k, r].append(text_mb / seconds)
            print(f"  round {round_ + 1}: {k:<8} {r} reader(s) {seconds:6.2f}s  {text_mb / seconds:7.0f} MB/s", flush=True)
    core = encode_rate(docs) / 1e6
    print(f"\none core encodes {core:.1f} MB/s of this text (gpt2)")
    for k in files:
        one = max(rates[k, a.readers[0]])
        ratios = [statistics.median(x / y for x, y in zip(rates[k, r], rates[k, a.readers[0]])) for r in a.readers]
        print(f"{k:<8} " + "  ".join(f"{r} reader(s): best {max(rates[k, r]):6.0f} MB/s ({q:.2f}x)"
                                     for r, q in zip(a.readers, ratios)) +
              f"   one reader feeds ~{one / core:.0f} encoding cores")


if __name__ == "__main__":
    main()
