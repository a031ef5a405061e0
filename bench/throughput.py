"""Tokens/s of prepare.py against the tokenizer's ceiling and the usual approaches, measured
side by side in one run on the same input (a benchmark, run by hand).

    python bench/throughput.py                        # generated 200 MB FineWeb-like corpus
    python bench/throughput.py --input train_fineweb.txt --mb 1000

(1) ceiling: bare tiktoken on all cores over documents already in memory, one Encoding per
    thread, encode_to_numpy, a call per document; and with 1 thread, for the tokenizer's own
    scaling;  (1b) the same, a call per ~1M characters of documents joined by <|endoftext|>
    (as prepare.py encodes with tiktoken);  (1s) the splintr-rs ceiling: threads, one splintr
    Tokenizer each, documents in memory, a call per document (encode_batch_flat of one text, its
    call that lets other threads run, as prepare.py calls it);  (2) prepare.py end to end (wall
    time of the command, startup included), on txt and on parquet holding the same documents,
    --encoder tiktoken, at all workers and at 1 worker;  (2s) the same with --encoder splintr;  (3) the old approach (on at most --old-mb of the input: it keeps every token in a
    Python list): read 1M-character chunks, encode_ordinary, extend a list, np.array at the
    end;  (4) build-nanogpt style: multiprocessing.Pool.imap(chunksize=16) over documents into
    a preallocated uint16 buffer.
Prints the best tokens/s of each and its ratios to (1), (1b) and (1s), each taken within a round
(the machine's speed drifts by minutes; every other round runs in reverse order), median over
rounds; and prepare.py's fixed startup cost, measured on a one-document input.
"""
import argparse
import multiprocessing as mp
import os
import re
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tiktoken

import corpus

try:  # (Python 3.10+: splintr-rs has no wheel for 3.9)
    import splintr
except ImportError:
    splintr = None

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(os.path.dirname(HERE), "data", "fineweb", "prepare.py")
sys.path.insert(0, os.path.dirname(SCRIPT))
from prep.cli import usable_cpus

CORES = usable_cpus()


def load_docs(path, mb):
    with open(path, encoding="utf-8") as f:
        text = f.read(mb << 20)
    return [d for d in re.split(r"\s*(?:<\|endoftext\|>\s*)+", text) if d][:-1]  # the last may be cut off


def ceiling(docs, base, joined=False, threads=CORES):
    """All cores (or threads), one Encoding per thread, encode_to_numpy, documents in memory: one
    call per document, or (joined) one call per ~1M characters of documents joined by the marker."""
    counts = [0] * threads
    if joined:
        texts, n = [[]], 0
        for d in docs:
            texts[-1].append(d)
            n += len(d)
            if n >= 1 << 20:
                texts.append([])
                n = 0
        docs = ["<|endoftext|>".join(t) + "<|endoftext|>" for t in texts if t]

    def work(k):
        enc = tiktoken.Encoding(base.name, pat_str=base._pat_str,
                                mergeable_ranks=base._mergeable_ranks, special_tokens=base._special_tokens)
        for d in docs[k::threads]:
            if joined:
                counts[k] += len(enc.encode_to_numpy(d, allowed_special={"<|endoftext|>"}))
            else:
                counts[k] += len(enc.encode_to_numpy(d, disallowed_special=())) + 1
    seconds = on_threads(work, threads)  # (before the counts are summed)
    return sum(counts), seconds


def splintr_ceiling(docs, threads=CORES):
    """All cores, one splintr-rs Tokenizer per thread (gpt2's ranks, its own copy of the pattern),
    documents in memory, a call per document."""
    counts = [0] * threads
    with open(os.path.join(os.path.dirname(SCRIPT), "gpt2.tiktoken"), "rb") as f:
        vocab = f.read()

    def work(k):
        tok = splintr.Tokenizer.from_bytes(vocab, splintr.GPT2_PATTERN, {})
        for d in docs[k::threads]:
            counts[k] += len(tok.encode_batch_flat([d])[0]) // 4 + 1
    seconds = on_threads(work, threads)
    return sum(counts), seconds


def on_threads(work, threads=CORES):
    """Seconds for work(0) ... work(threads - 1), each on a thread of its own, to finish."""
    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    t = time.perf_counter()
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return time.perf_counter() - t


def ours(path, out, workers, script=SCRIPT, encoder="tiktoken"):
    """Wall time of the whole command, startup included (startup() measures that alone)."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, script, "--input", path, "--out-dir", out, "--restart",
                        "--workers", str(workers), "--encoder", encoder], capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if r.returncode:
        sys.exit(r.stderr[-2000:])
    tokens = sum(os.path.getsize(os.path.join(out, f)) // 2 for f in ("train.bin", "val.bin"))
    return tokens, seconds


def old_approach(path, mb):
    """The old data/fineweb/prepare.py fix: 1M-character chunks into one Python list."""
    enc = tiktoken.get_encoding("gpt2")
    t = time.perf_counter()
    tokens, left = [], mb << 20
    with open(path, encoding="utf-8") as f:
        while left > 0 and (chunk := f.read(min(1 << 20, left))):
            left -= len(chunk)
            tokens.extend(enc.encode_ordinary(chunk))
    arr = np.array(tokens, dtype=np.uint16)
    return len(arr), time.perf_counter() - t


def _tokenize(doc):
    enc = tiktoken.get_encoding("gpt2")
    return np.array([enc.eot_token] + enc.encode_ordinary(doc), dtype=np.uint16)


def pool_approach(docs):
    """build-nanogpt's fineweb.py: Pool.imap(chunksize=16) into a preallocated uint16 buffer."""
    t = time.perf_counter()
    buf, n = np.empty(sum(len(d) for d in docs), dtype=np.uint16), 0   # chars >= tokens
    with mp.Pool(CORES) as pool:
        for toks in pool.imap(_tokenize, docs, chunksize=16):
            buf[n:n + len(toks)] = toks
            n += len(toks)
    return n, time.perf_counter() - t


def startup(workdir, encoder="tiktoken"):
    """prepare.py's fixed cost: a whole run on a one-document input."""
    path = os.path.join(workdir, "one_document.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("A short document." + corpus.EOT_LAYOUT)
    return ours(path, os.path.join(workdir, "o_one"), CORES, encoder=encoder)[1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--input", help="a txt file in train_fineweb.txt layout (default: generated)")
    p.add_argument("--mb", type=int, default=200, help="MB of text to use")
    p.add_argument("--old-mb", type=int, default=200, help="MB for (3), which keeps all tokens in a list")
    p.add_argument("--workdir", default="/tmp/prepare-bench")
    p.add_argument("--rounds", type=int, default=3, help="interleaved repetitions")
    p.add_argument("--baseline", help="another prepare.py (say, an older commit's) to run beside this one")
    p.add_argument("--skip", nargs="*", default=[], help="keys of runs to leave out (ceiling1 txt1 old pool ...)")
    a = p.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    src = a.input or os.path.join(a.workdir, f"corpus_{a.mb}MB.txt")
    if not os.path.exists(src):
        print(f"generating {src} (bench/corpus.py: FineWeb-like English) ...", flush=True)
        corpus.write_txt(src, a.mb << 20)
    docs = load_docs(src, a.mb)
    txt = os.path.join(a.workdir, f"same_{a.mb}MB.txt")
    with open(txt, "w", encoding="utf-8") as f:
        f.writelines(d + corpus.EOT_LAYOUT for d in docs)
    parquet = os.path.join(a.workdir, f"same_{a.mb}MB.parquet")
    pq.write_table(pa.table({"text": docs}), parquet, row_group_size=1000, compression="snappy")
    print(f"input: {len(docs):,} documents, {sum(map(len, docs)) / 1e6:.0f}M characters, {CORES} cores")

    base = tiktoken.get_encoding("gpt2")
    runs = {  # key: (label, run)
        "ceiling": ("(1) ceiling: threads, own Encoding, call per doc", lambda: ceiling(docs, base)),
        "joined": ("(1b) ceiling, documents joined, ~1M chars a call", lambda: ceiling(docs, base, True)),
        "ceiling1": ("(1) ceiling with 1 thread", lambda: ceiling(docs, base, threads=1)),
        "txt": ("(2) prepare.py txt, all workers", lambda: ours(txt, f"{a.workdir}/o_txt", CORES)),
        "parquet": ("(2) prepare.py parquet, all workers", lambda: ours(parquet, f"{a.workdir}/o_pq", CORES)),
        "txt1": ("(2) prepare.py txt, 1 worker", lambda: ours(txt, f"{a.workdir}/o_txt1", 1)),
        "old": ("(3) old: 1M-char chunks into a list", lambda: old_approach(txt, min(a.old_mb, a.mb))),
        "pool": ("(4) Pool.imap(chunksize=16) into uint16", lambda: pool_approach(docs)),
    }
    if splintr:
        runs.update({
            "sceiling": ("(1s) splintr ceiling: threads, own Tokenizer, call per doc", lambda: splintr_ceiling(docs)),
            "stxt": ("(2s) prepare.py txt, --encoder splintr", lambda: ours(txt, f"{a.workdir}/o_stxt", CORES,
                                                                           encoder="splintr")),
            "spq": ("(2s) prepare.py parquet, --encoder splintr", lambda: ours(parquet, f"{a.workdir}/o_spq", CORES,
                                                                              encoder="splintr")),
        })
    runs = {key: run for key, run in runs.items() if key not in a.skip}
    if a.baseline:
        runs["base"] = ("(5) --baseline prepare.py txt, all workers",
                        lambda: ours(txt, f"{a.workdir}/o_base", CORES, a.baseline))
    rates, fixed, fixed_s = {key: [] for key in runs}, [], []
    for round_ in range(a.rounds):  # interleaved rounds: the machine's speed drifts by minutes,
        fixed.append(startup(a.workdir))  # so every other round runs in reverse order
        if splintr:
            fixed_s.append(startup(a.workdir, "splintr"))
        for key, (label, run) in list(runs.items())[::-1 if round_ % 2 else 1]:
            tokens, seconds = run()
            rates[key].append(tokens / seconds)
            print(f"  round {round_ + 1}: {label:<52} {tokens:>12,} tokens {seconds:7.2f}s", flush=True)
    # each ratio is taken within a round, then the median over rounds
    ratio = lambda x, y: statistics.median(p / q for p, q in zip(rates[x], rates[y])) \
        if x in rates and y in rates else float("nan")
    for key, (label, _) in runs.items():
        print(f"{label:<60} best {max(rates[key]) / 1e6:6.2f}M tok/s   {ratio(key, 'ceiling'):5.2f}x (1)   "
              f"{ratio(key, 'joined'):5.2f}x (1b)" + (f"   {ratio(key, 'sceiling'):5.2f}x (1s)" if splintr else ""))
    print(f"scaling 1 -> {CORES} workers: {ratio('txt', 'txt1'):.2f}x (bare tiktoken 1 -> {CORES} "
          f"threads: {ratio('ceiling', 'ceiling1'):.2f}x); ours / old: "
          f"{ratio('txt', 'old'):.2f}x; ours / Pool: {ratio('txt', 'pool'):.2f}x")
    if splintr:
        print(f"--encoder splintr / --encoder tiktoken: txt {ratio('stxt', 'txt'):.2f}x, parquet "
              f"{ratio('spq', 'parquet'):.2f}x; bare splintr / bare tiktoken: {ratio('sceiling', 'ceiling'):.2f}x; "
              f"--encoder splintr / (1s): txt {ratio('stxt', 'sceiling'):.2f}x, parquet {ratio('spq', 'sceiling'):.2f}x")
    if a.baseline:
        print(f"this prepare.py / --baseline, txt: {ratio('txt', 'base'):.3f}x (median of rounds)")
    print(f"prepare.py startup (a one-document run): {statistics.median(fixed):.2f}s with tiktoken" +
          (f", {statistics.median(fixed_s):.2f}s with splintr" if splintr else "") + ", included above")


if __name__ == "__main__":
    main()
