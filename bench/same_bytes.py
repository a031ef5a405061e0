"""The same output bytes from two versions of prepare.py (say, before and after a reshaping),
on one mixed input, for every format and the options that change how the work is done (a
benchmark-style check, run by hand; the tests prove exactness against a reference).

    python bench/same_bytes.py --baseline /tmp/old/prepare.py

The input: a folder holding txt (a byte order mark, invalid UTF-8), txt.bz2, txt.lz4,
jsonl.gz (a bad line, skipped), json.xz, jsonl.zst and parquet of generated documents, ~4 MB
in all (over the size read without reader processes). Each version runs: bin, llmc and npy
(small shards, --val-tokens), --max-tokens, --readers 2 --workers 3 --chunk-size 5000, and
--shard 0/2 + 1/2 + --merge. Prints the sha256 of every output file per version, and exits
non-zero unless they are equal. With --resume, also: the baseline is killed (SIGKILL) before its
2nd and 7th checkpoint, and this version resumes from that checkpoint: the same bytes again.
"""
import argparse
import bz2
import gzip
import hashlib
import json
import lzma
import os
import shlex
import shutil
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq

import corpus

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(os.path.dirname(HERE), "data", "fineweb", "prepare.py")
RUNS = {  # name: the options of each command, run in order into one output folder
    "bin": [[]],
    "llmc": [["--format", "llmc", "--shard-tokens", "150000", "--val-tokens", "50000"]],
    "npy": [["--format", "npy", "--shard-tokens", "200000", "--val-tokens", "30000"]],
    "max-tokens": [["--max-tokens", "300000", "--val-fraction", "0.01"]],
    "readers": [["--readers", "2", "--workers", "3", "--chunk-size", "5000", "--format", "llmc",
                 "--shard-tokens", "100000", "--val-tokens", "20000"]],
    "merge": [["--shard", "0/2"], ["--shard", "1/2"], ["--merge"]],
}


def make_input(folder):
    os.makedirs(folder, exist_ok=True)
    docs = list(corpus.documents(4 << 20, seed=7))
    parts = [docs[k::7] for k in range(7)]
    layout = lambda ds: "".join(d + corpus.EOT_LAYOUT for d in ds)
    with open(f"{folder}/a.txt", "wb") as f:
        f.write(b"\xef\xbb\xbf" + layout(parts[0]).encode() + b"bad \xff byte" + corpus.EOT_LAYOUT.encode())
    with bz2.open(f"{folder}/b.txt.bz2", "wt", encoding="utf-8") as f:
        f.write(layout(parts[1]))
    pa.output_stream(f"{folder}/c.txt.lz4", compression="lz4").write(layout(parts[2]).encode())
    with gzip.open(f"{folder}/d.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(dict(text=d)) + "\n" + ("{bad\n" if i == 3 else "") for i, d in enumerate(parts[3]))
    with lzma.open(f"{folder}/e.json.xz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(dict(text=d, id=i)) + "\n" for i, d in enumerate(parts[4]))
    with pa.output_stream(f"{folder}/f.jsonl.zst", compression="zstd") as f:
        f.write("".join(json.dumps(dict(text=d)) + "\n" for d in parts[5]).encode())
    pq.write_table(pa.table({"text": parts[6]}), f"{folder}/g.parquet", row_group_size=100)


def command(script, folder, target, options, kill_at=None):
    env = dict(os.environ, PREPARE_TEST_KILL_BEFORE_CHECKPOINT=str(kill_at)) if kill_at else None
    r = subprocess.run([sys.executable, script, "--input", folder, "--out-dir", target, "--skip-bad-files",
                        *options], capture_output=True, text=True, env=env)
    if bool(r.returncode) != bool(kill_at):
        sys.exit(f"{script} {' '.join(options)}: exit {r.returncode}\n{r.stderr[-2000:]}")


def digests(script, folder, work, killed_by=None, kill_at=None, extra=()):
    """{run/file: sha256} of every file the runs write (killed_by: a prepare.py that starts each
    one-command run and is killed before its kill_at-th checkpoint, before this one resumes it;
    extra: options added to each of script's commands)."""
    out = {}
    for name, commands in RUNS.items():
        if killed_by and len(commands) > 1:
            continue
        target = os.path.join(work, name)
        shutil.rmtree(target, ignore_errors=True)
        for options in commands:
            if killed_by:
                command(killed_by, folder, target, options + ["--chunk-size", "20000", "--checkpoint-seconds", "0"],
                        kill_at=kill_at)
            command(script, folder, target, options + list(extra))
        for f in sorted(os.listdir(target)):
            if f.endswith((".bin", ".npy")):
                with open(os.path.join(target, f), "rb") as fh:
                    out[f"{name}/{f}"] = hashlib.sha256(fh.read()).hexdigest()
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--baseline", required=True, help="the other prepare.py (an older commit's)")
    p.add_argument("--workdir", default="/tmp/prepare-same-bytes")
    p.add_argument("--resume", action="store_true", help="also resume the baseline's killed runs with this one")
    p.add_argument("--this-options", default="", help='options for this version\'s commands only, say '
                                                       '--this-options="--encoder tiktoken"')
    a = p.parse_args()
    folder = os.path.join(a.workdir, "input")
    shutil.rmtree(a.workdir, ignore_errors=True)
    make_input(folder)
    ours = digests(SCRIPT, folder, os.path.join(a.workdir, "this"), extra=shlex.split(a.this_options))
    base = digests(a.baseline, folder, os.path.join(a.workdir, "baseline"))
    for key in sorted(set(ours) | set(base)):
        mark = "same" if ours.get(key) == base.get(key) else "DIFFERENT"
        print(f"{mark:9} {key:40} {ours.get(key, '-')[:16]}  {base.get(key, '-')[:16]}")
    same = ours == base
    print(f"{len(ours)} files: {'the same bytes' if same else 'NOT the same bytes'} as {a.baseline}")
    for kill_at in ([2, 7] if a.resume else []):
        resumed = digests(SCRIPT, folder, os.path.join(a.workdir, f"resumed-{kill_at}"), a.baseline, kill_at,
                          shlex.split(a.this_options))
        ok = all(ours[k] == v for k, v in resumed.items())
        same = same and ok
        print(f"{len(resumed)} files, the baseline killed before checkpoint {kill_at} and resumed by this one: "
              f"{'the same bytes' if ok else 'NOT the same bytes'}")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
