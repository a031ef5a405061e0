"""Peak RSS of real prepare.py runs on generated inputs of two sizes (a benchmark, run by hand).

    python bench/memory.py                   # ~100 MB and ~1 GB txt, default settings
    python bench/memory.py --sizes 100 1000 --format parquet --workdir /tmp/bench
    python bench/memory.py --format jsonl.gz       # sizes: MB of text before compression

Prints each run's peak memory (PSS of the script and its reader process, sampled) and the
ratio large/small. Target: <= 256 MiB at default settings and a ratio <= 1.10: memory must not
grow with the input.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import psutil

import corpus

HERE = os.path.dirname(os.path.abspath(__file__))
WRITE = {"txt": corpus.write_txt, "parquet": corpus.write_parquet, "jsonl.gz": corpus.write_jsonl}
SCRIPT = os.path.join(os.path.dirname(HERE), "data", "fineweb", "prepare.py")


def peak_rss_mib(args, interval=0.05):
    """Runs prepare.py; returns (peak memory of the whole process tree in MiB, exit code,
    stderr). The tree is the script and its reader process, which share some pages: each
    process counts its proportional share (PSS), so the sum is the memory they really take."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, SCRIPT, *map(str, args)], stdout=subprocess.DEVNULL, stderr=err)
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
    p.add_argument("extra", nargs="*", help="more prepare.py options, after --")
    a = p.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    results = []
    for mb in a.sizes:
        path = os.path.join(a.workdir, f"corpus_{mb}MB.{a.format}")
        if not os.path.exists(path):
            print(f"generating {path} ...", flush=True)
            WRITE[a.format](path, mb << 20)
        out = os.path.join(a.workdir, f"out_{mb}MB_{a.format}")
        t = time.time()
        rss, code, err = peak_rss_mib(["--input", path, "--out-dir", out, "--restart", *a.extra])
        if code:
            sys.exit(f"prepare.py failed:\n{err[-2000:]}")
        results.append(rss)
        print(f"{mb:>6} MB {a.format}: peak memory (PSS) {rss:7.1f} MiB  ({time.time() - t:.0f}s)", flush=True)
    print(f"ratio {a.sizes[-1]} MB / {a.sizes[0]} MB: {results[-1] / results[0]:.3f}")


if __name__ == "__main__":
    main()
