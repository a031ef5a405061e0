"""Time of real prepare.py runs on text with no safe cut for a long way (see find_cut), at a small
--chunk-size, at three sizes (a benchmark, run by hand): the time must grow in proportion to
the input, whatever --chunk-size.

    python bench/cut_time.py
    python bench/cut_time.py --script /tmp/old/prepare.py --script data/fineweb/prepare.py --timeout 120
    python bench/cut_time.py --shapes cjk --sizes 0.25 0.5 1 --workdir /tmp/bench

The shapes (txt files, one document and a short second one), each at its --chunk-size:
  whitespace  a run of N MB of spaces inside a document (--chunk-size 4096)
  prose       Chinese-like prose of N M characters: no whitespace, punctuation ，。 (--chunk-size 10000)
  cjk         N M CJK characters with no punctuation and no whitespace (--chunk-size 1000)
Prints each run's wall time per script, side by side ("> T" when it ran past --timeout), and
the ratio of the largest size's time to the smallest's (linear: about the ratio of the sizes).
"""
import argparse
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(os.path.dirname(HERE), "data", "fineweb", "prepare.py")
TAIL = "\n<|endoftext|>\nsecond document"
CJK = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]


def write_whitespace(path, n):
    """One document holding a run of n spaces."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("hello world" + " " * n + " end" + TAIL)


def write_prose(path, n, seed=0):
    """n characters of prose in Chinese characters: clauses end with ，, sentences with 。, a
    paragraph (a newline) every few sentences; never a letter before whitespace."""
    rng, out, made = random.Random(seed), [], 0
    while made < n:
        sentence = "，".join("".join(rng.choices(CJK, k=rng.randint(4, 12))) for _ in range(rng.randint(1, 4)))
        sentence += "。" + ("\n" if rng.random() < 0.2 else "")
        out.append(sentence)
        made += len(sentence)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(out) + TAIL)


def write_cjk(path, n, seed=0):
    """n CJK characters with no punctuation and no whitespace."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(rng.choices(CJK, k=n)) + TAIL)


SHAPES = {"whitespace": (write_whitespace, 4096, "MB of spaces"),
          "prose": (write_prose, 10_000, "M characters"),
          "cjk": (write_cjk, 1000, "M characters")}


def timed_run(script, args, timeout):
    """Seconds one run of script took, or None past timeout (the run is then ended)."""
    t = time.time()
    try:
        proc = subprocess.run([sys.executable, script, *map(str, args)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode:
        sys.exit(f"{script} failed:\n{proc.stderr[-2000:]}")
    return time.time() - t


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=list(SHAPES))
    p.add_argument("--sizes", type=float, nargs=3, default=[0.5, 1, 2], help="millions of characters")
    p.add_argument("--script", action="append", help="a prepare.py to time (again for another, side by side); "
                                                     "default: this one")
    p.add_argument("--timeout", type=float, default=300, help="seconds a run may take")
    p.add_argument("--workdir", default="/tmp/prepare-bench")
    a = p.parse_args()
    scripts = a.script or [SCRIPT]
    os.makedirs(a.workdir, exist_ok=True)
    print("  ".join(f"[{k}] {s}" for k, s in enumerate(scripts)))
    for shape in a.shapes:
        write, chunk, unit = SHAPES[shape]
        times = {k: [] for k in range(len(scripts))}
        for size in a.sizes:
            path = os.path.join(a.workdir, f"{shape}_{size:g}M.txt")
            if not os.path.exists(path):
                write(path, int(size * 1_000_000))
            row = []
            for k, script in enumerate(scripts):
                out = os.path.join(a.workdir, f"out_{shape}_{k}")
                secs = None if times[k] and times[k][-1] is None else timed_run(
                    script, ["--input", path, "--out-dir", out, "--restart", "--chunk-size", chunk], a.timeout)
                times[k].append(secs)
                row.append(f"[{k}] " + (f"{secs:7.1f} s" if secs is not None else f"> {a.timeout:g} s"))
            print(f"{shape:>10} {size:5g} {unit} (--chunk-size {chunk}):  " + "   ".join(row), flush=True)
        for k, ts in times.items():
            if ts[0] is not None and ts[-1] is not None:
                print(f"{'':>10} [{k}] time {a.sizes[-1]:g} / {a.sizes[0]:g}: {ts[-1] / ts[0]:.1f} "
                      f"(sizes: {a.sizes[-1] / a.sizes[0]:g})")


if __name__ == "__main__":
    main()
