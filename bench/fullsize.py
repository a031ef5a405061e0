"""The user's full-size scenario (a benchmark, run by hand): an N-GB train_fineweb.txt in a
nanoGPT checkout, the default command `python data/fineweb/prepare.py` killed (SIGKILL) midway,
run again to the end, then `--verify`.

    python bench/fullsize.py                          # 15 GB, killed after 240 s
    python bench/fullsize.py --gb 2 --base-mb 200 --kill-after 10 --timeline /tmp/pss.csv

WORKDIR/base_<MB>MB.txt is generated once (bench/corpus.py) and WORKDIR/nanogpt/data/fineweb/
train_fineweb.txt is made of copies of it, so the expected tokens and documents are exactly the
copies times those of one uninterrupted run on the base file (made once: its summary is kept in
WORKDIR/one_<MB>MB; delete that folder to make it again). Without --keep, train_fineweb.txt and the
token files are deleted at the end; the base file is kept for the next run.
prepare.py is copied beside train_fineweb.txt; each run prints its tokens, documents, tokens/s,
wall time and the peak PSS of its process tree (sampled every 0.2 s), with each process's share
at that peak. --timeline FILE writes the PSS every 10 s (and the window's min and max) as CSV.
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import psutil

import corpus

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(os.path.dirname(HERE), "data", "fineweb", "prepare.py")
ROLES = ("main", "reader", "tracker")
MIB = 2 ** 20


def role(p, root):
    """main (the script), tracker (multiprocessing's resource tracker) or reader (a spawned reader)."""
    return "main" if p.pid == root.pid else "tracker" if "resource_tracker" in " ".join(p.cmdline()) else "reader"


def run(args, cwd, kill_after=None, label="", timeline=None, interval=0.2):
    """Runs prepare.py in cwd, sampling the PSS of its process tree; SIGKILLs the tree after
    kill_after seconds. Returns (wall seconds, exit code, peak MiB, {role: MiB at the peak}, stderr)."""
    with tempfile.TemporaryFile() as err:
        start = time.time()
        proc = subprocess.Popen([sys.executable, "data/fineweb/prepare.py", *args], cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=err)
        root, peak, at_peak, window, next_row = psutil.Process(proc.pid), 0, {}, [], 10
        while proc.poll() is None:
            now = time.time() - start
            try:
                tree = [root, *root.children(recursive=True)]
                if kill_after is not None and now >= kill_after:
                    for p in tree:
                        p.kill()
                    break
                mem = dict.fromkeys(ROLES, 0)
                for p in tree:
                    mem[role(p, root)] += p.memory_full_info().pss / MIB
            except psutil.NoSuchProcess:  # (one ended between the listing and its sample)
                time.sleep(interval)
                continue
            total = sum(mem.values())
            if total > peak:
                peak, at_peak = total, mem
            window.append(total)
            if timeline and now >= next_row:
                values = (total, *mem.values(), min(window), max(window))
                timeline.writerow([label, round(now), *(f"{x:.1f}" for x in values)])
                window, next_row = [], next_row + 10
            time.sleep(interval)
        proc.wait()
        err.seek(0)
        return time.time() - start, proc.returncode, peak, at_peak, err.read().decode(errors="replace")


def show(name, wall, peak, at_peak, tokens, docs, rate_tokens, note=""):
    parts = ", ".join(f"{r} {at_peak.get(r, 0):.1f}" for r in ROLES)
    print(f"{name:>8}: {tokens:>14,} tokens {docs:>11,} docs  {rate_tokens / wall / 1e6:5.2f}M tokens/s  "
          f"{wall:7.1f}s  peak PSS {peak:6.1f} MiB ({parts}){note}", flush=True)


def read_json(*path):
    with open(os.path.join(*path)) as f:
        return json.load(f)


def totals(summary):
    return sum(summary[s]["tokens"] for s in ("train", "val")), sum(summary[s]["documents"] for s in ("train", "val"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--gb", type=float, default=15, help="size of train_fineweb.txt in GB (copies of the base file)")
    p.add_argument("--base-mb", type=int, default=1000, help="MB of generated text copied to make it")
    p.add_argument("--kill-after", type=float, default=240, help="seconds before the first run is SIGKILLed")
    p.add_argument("--workdir", default="/tmp/prepare-fullsize")
    p.add_argument("--keep", action="store_true", help="keep the generated train_fineweb.txt and token files")
    p.add_argument("--timeline", help="CSV file for the PSS every 10 s")
    a = p.parse_args()
    cache = os.path.join(os.path.dirname(HERE), ".cache", "tiktoken")  # (the tests' offline vocabulary)
    if "TIKTOKEN_CACHE_DIR" not in os.environ and os.path.isdir(cache):
        os.environ["TIKTOKEN_CACHE_DIR"] = cache
    folder = os.path.join(a.workdir, "nanogpt", "data", "fineweb")
    nanogpt, one = os.path.join(a.workdir, "nanogpt"), os.path.join(a.workdir, f"one_{a.base_mb}MB")
    base, txt = os.path.join(a.workdir, f"base_{a.base_mb}MB.txt"), os.path.join(folder, "train_fineweb.txt")
    os.makedirs(folder, exist_ok=True)
    shutil.copy(SCRIPT, folder)
    if not os.path.exists(base):
        print(f"generating {base} ...", flush=True)
        corpus.write_txt(base + ".tmp", a.base_mb << 20)
        os.replace(base + ".tmp", base)
    if not os.path.exists(os.path.join(one, "summary.json")):  # the reference: one copy, uninterrupted
        wall, code, peak, at_peak, err = run(["--input", base, "--out-dir", one, "--restart"], nanogpt)
        if code:
            sys.exit(f"the one-copy run failed:\n{err[-2000:]}")
        for name in os.listdir(one):
            if name.endswith(".bin"):
                os.remove(os.path.join(one, name))
        one_tokens, one_docs = totals(read_json(one, "summary.json"))
        show("one copy", wall, peak, at_peak, one_tokens, one_docs, one_tokens)
    one_tokens, one_docs = totals(read_json(one, "summary.json"))
    copies = max(1, round(a.gb * 1000 / a.base_mb))
    if not os.path.exists(txt) or os.path.getsize(txt) != copies * os.path.getsize(base):
        print(f"writing {txt}: {copies} copies of {base} ...", flush=True)
        with open(txt + ".tmp", "wb") as out:
            for _ in range(copies):
                with open(base, "rb") as f:
                    shutil.copyfileobj(f, out, 16 << 20)
        os.replace(txt + ".tmp", txt)
    for name in os.listdir(folder):  # the output of earlier runs: the default command cannot --restart
        if name not in ("prepare.py", "train_fineweb.txt"):
            os.remove(os.path.join(folder, name))
    print(f"{os.path.getsize(txt) / 1e9:.2f} GB input; one copy: {one_tokens:,} tokens, {one_docs:,} documents",
          flush=True)

    timeline_file = open(a.timeline, "w", newline="") if a.timeline else None
    timeline = csv.writer(timeline_file) if timeline_file else None
    if timeline:
        timeline.writerow(["run", "seconds", "total_mib", *ROLES, "window_min", "window_max"])
    wall, code, peak, at_peak, err = run([], nanogpt, a.kill_after, "killed", timeline)
    killed = code == -9
    written = sum(os.path.getsize(os.path.join(folder, f"{s}.bin.partial")) // 2 for s in ("train", "val")
                  if os.path.exists(os.path.join(folder, f"{s}.bin.partial")))
    ck = read_json(folder, "prepare.checkpoint.json")["split"] if os.path.exists(
        os.path.join(folder, "prepare.checkpoint.json")) else dict(tokens=[0, 0], docs=[0, 0])
    show("killed", wall, peak, at_peak, written, sum(ck["docs"]), written, f"; tokens written, documents "
         f"checkpointed ({sum(ck['tokens']):,} tokens)" if killed else f"; NOT KILLED (exit code {code})")
    wall, code, peak, at_peak, err = run([], nanogpt, None, "resumed", timeline)
    if code:
        sys.exit(f"FAIL: the resumed run failed:\n{err[-2000:]}")
    tokens, docs = totals(read_json(folder, "summary.json"))
    show("resumed", wall, peak, at_peak, tokens, docs, tokens - sum(ck["tokens"]), " (tokens/s: of its own work)")
    vwall, vcode, vpeak, vat_peak, verr = run(["--verify"], nanogpt, None, "verify", timeline)
    print(f"  verify: exit code {vcode}  {vwall:7.1f}s  peak PSS {vpeak:6.1f} MiB"
          + (f"\n{verr[-2000:]}" if vcode else ""))
    if timeline_file:
        timeline_file.close()
    checks = {f"tokens {tokens:,} == {copies} x {one_tokens:,}": tokens == copies * one_tokens,
              f"documents {docs:,} == {copies} x {one_docs:,}": docs == copies * one_docs,
              "the first run was killed": killed, "--verify passed": vcode == 0}
    for what, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    if not a.keep:
        for name in os.listdir(folder):
            if name != "prepare.py":
                os.remove(os.path.join(folder, name))
    print("PASS" if all(checks.values()) else "FAIL")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
