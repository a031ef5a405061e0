"""The reading stage alone (read, decode, cut into chunks; no encoding) with 1 and 2 reader
processes, for txt, parquet and JSON Lines holding the same documents (a benchmark, run by hand).

    python bench/readers.py                 # a generated ~200 MB corpus, 3 interleaved rounds
    python bench/readers.py --mb 500 --readers 1 2      # 500 MB: 16 units of each kind

Each reader process reads whole units (prepare.py's own read_unit) and drops the chunks, as
the reader processes of a run do before they send them. Prints MB/s of input text per kind
and reader count, the ratio of 2 readers to 1 (within each round, the median), how many
encoding cores one reader keeps busy at a measured per-core encoding rate, and what the
machine itself gives: 2 processes of a CPU-bound Python loop against one (on a VM, less than 2).
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
from prep.cli import make_config
from prep.inputs import open_inputs, plan_units
from prep.readers import read_unit


def read_units(paths, todo, go, done):
    """A reader: once started (go), reads the next unit from todo until none is left (as a run
    hands units to whichever reader is free), and reports when it is done."""
    config = make_config(["--input", *paths, "--out-dir", "/nonexistent"])
    inputs = open_inputs(config)
    units = plan_units(inputs, config)
    go.wait()
    while (u := todo.get()) is not None:
        for _ in read_unit(inputs, units[u], None, config):
            pass
    done.put(time.time())


def stage(paths, readers):
    """Seconds for `readers` processes to read every unit (each takes the next unit when it is
    free), from the moment all have started (a process's start-up is not reading)."""
    config = make_config(["--input", *paths, "--out-dir", "/nonexistent"])
    n = len(plan_units(open_inputs(config), config))
    ctx = mp.get_context("spawn")
    go, done, todo = ctx.Event(), ctx.Queue(), ctx.Queue()
    for u in [*range(n), *[None] * readers]:
        todo.put(u)
    procs = [ctx.Process(target=read_units, args=(paths, todo, go, done)) for _ in range(readers)]
    for p in procs:
        p.start()
    time.sleep(3)  # (each imports the script; none reads before go)
    t = time.time()
    go.set()
    ends = [done.get() for _ in procs]
    for p in procs:
        p.join()
    return max(ends) - t


def busy(n, go, done):
    go.wait()
    line = json.dumps({"text": "word " * 600})
    for _ in range(n):
        json.loads(line)
    done.put(time.time())


def machine_scaling(processes, n=100_000):
    """How much faster `processes` processes run the same CPU-bound Python loop than one: what
    this machine gives, to read the readers' ratios against (a VM's cores may not add up)."""
    seconds = []
    for k in (1, processes):
        ctx = mp.get_context("spawn")
        go, done = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=busy, args=(n, go, done)) for _ in range(k)]
        for p in procs:
            p.start()
        time.sleep(1)
        t = time.time()
        go.set()
        ends = [done.get() for _ in procs]
        for p in procs:
            p.join()
        seconds.append((max(ends) - t) / k)
    return seconds[0] / seconds[1]


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
    machine = []
    for round_ in range(a.rounds):
        machine.append(machine_scaling(a.readers[-1]))
        print(f"  round {round_ + 1}: the machine: {a.readers[-1]} processes of a Python loop run "
              f"{machine[-1]:.2f}x one", flush=True)
        order = [(k, r) for k in files for r in a.readers]
        for k, r in order[::-1 if round_ % 2 else 1]:
            seconds = stage([files[k]], r)
            rates[k, r].append(text_mb / seconds)
            print(f"  round {round_ + 1}: {k:<8} {r} reader(s) {seconds:6.2f}s  {text_mb / seconds:7.0f} MB/s", flush=True)
    core = encode_rate(docs) / 1e6
    print(f"\none core encodes {core:.1f} MB/s of this text (gpt2); the machine's own scaling, "
          f"{a.readers[-1]} processes of a CPU-bound Python loop: {statistics.median(machine):.2f}x")
    for k in files:
        one = max(rates[k, a.readers[0]])
        ratios = [statistics.median(x / y for x, y in zip(rates[k, r], rates[k, a.readers[0]])) for r in a.readers]
        print(f"{k:<8} " + "  ".join(f"{r} reader(s): best {max(rates[k, r]):6.0f} MB/s ({q:.2f}x)"
                                     for r, q in zip(a.readers, ratios)) +
              f"   one reader feeds ~{one / core:.0f} encoding cores")


if __name__ == "__main__":
    main()
