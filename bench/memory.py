"""Peak RSS of real prepare.py runs on generated inputs of two sizes (a benchmark, run by hand).

    python bench/memory.py                   # ~100 MB and ~1 GB txt, default settings
    python bench/memory.py --sizes 100 1000 --format parquet --workdir /tmp/bench

Prints each run's peak RSS (the child's ru_maxrss) and the ratio large/small. Target: <= 256 MiB
at default settings and a ratio <= 1.10: memory must not grow with the input.
"""
import argparse
import os
import subprocess
import sys
import time

import corpus

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(os.path.dirname(HERE), "data", "fineweb", "prepare.py")
# run one command as a child of a fresh Python, and print that child's peak RSS in KiB
PEAK = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)")


def peak_rss(args):
    out = subprocess.run([sys.executable, "-c", PEAK, sys.executable, SCRIPT, *args],
                         capture_output=True, text=True)
    kib, code = out.stdout.split()[-2:]
    if code != "0":
        sys.exit(f"prepare.py failed:\n{out.stderr[-2000:]}")
    return int(kib) / 1024


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000], help="input sizes in MB")
    p.add_argument("--format", choices=["txt", "parquet"], default="txt")
    p.add_argument("--workdir", default="/tmp/prepare-bench")
    p.add_argument("extra", nargs="*", help="more prepare.py options, after --")
    a = p.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    results = []
    for mb in a.sizes:
        path = os.path.join(a.workdir, f"corpus_{mb}MB.{a.format}")
        if not os.path.exists(path):
            print(f"generating {path} ...", flush=True)
            (corpus.write_txt if a.format == "txt" else corpus.write_parquet)(path, mb << 20)
        out = os.path.join(a.workdir, f"out_{mb}MB_{a.format}")
        t = time.time()
        rss = peak_rss(["--input", path, "--out-dir", out, "--restart", *a.extra])
        results.append(rss)
        print(f"{mb:>6} MB {a.format}: peak RSS {rss:7.1f} MiB  ({time.time() - t:.0f}s)", flush=True)
    print(f"ratio {a.sizes[-1]} MB / {a.sizes[0]} MB: {results[-1] / results[0]:.3f}")


if __name__ == "__main__":
    main()
