"""Units of work fixed by the inputs: the same bytes for any unit size, any number of reader
processes, any number of machines (--shard I/N, then --merge), and after kills anywhere."""
import glob
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time

import numpy as np
import pytest
from hypothesis import given, strategies as st

import corpus
import helpers
from helpers import (DOCS_400, ROOT, SCRIPT, assert_user_error, documents_in, flat, killed_at_random, read_bin,
                     reference_docs, run, sha_and_size, split_docs, start, summary_of, txt_documents,
                     txt_layout, write_parquet)
from strategies import SETTINGS, TEXTS
from prep.cli import main



def run_in_process(inputs, out, unit_bytes, readers=1, small=True, **options):
    """prepare.main in this process, with units of unit_bytes (read by LocalReader when small,
    else by reader processes, which get their units from here)."""
    args = ["--input", *map(str, inputs), "--out-dir", str(out), "--readers", str(readers)]
    for k, v in options.items():
        args += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    return main(args, unit_bytes=unit_bytes, small_input=1 << 40 if small else 0)


def outputs(out):
    return [(out / name).read_bytes() for name in ("train.bin", "val.bin")]


@pytest.mark.slow
@SETTINGS
@given(text=TEXTS, unit=st.integers(1, 48), chunk=st.integers(1, 40))
def test_txt_units_of_any_size_give_the_one_shot_encoding(text, unit, chunk):
    """Byte ranges as small as one byte: every document is read once, by the unit its boundary's
    last marker starts in, however the ranges cut markers, whitespace and characters."""
    docs = txt_documents(text)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "in.txt")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        rc = run_in_process([path], os.path.join(d, "o"), unit, chunk_size=chunk, val_fraction=0)
        if not docs:
            assert rc == 1
            return
        assert rc == 0
        train = read_bin(os.path.join(d, "o", "train.bin"))
    assert train == flat(reference_docs(docs))


@pytest.mark.parametrize("unit", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("text", ["a<|endoftext|>b", "é<|endoftext|>中<|endoftext|> \n<|endoftext|>ü x"])
def test_units_of_a_few_bytes(text, unit, tmp_path):
    """(Units shorter than a character plus a marker: the edge cases of the ownership rule.)"""
    (tmp_path / "in.txt").write_text(text, encoding="utf-8")
    assert run_in_process([tmp_path / "in.txt"], tmp_path / "o", unit, val_fraction=0) == 0
    assert read_bin(tmp_path / "o" / "train.bin") == flat(reference_docs(txt_documents(text)))


@SETTINGS
@given(rows=st.lists(st.one_of(st.none(), TEXTS), min_size=1, max_size=20), unit=st.integers(1, 200),
       group=st.integers(1, 5), frac=st.sampled_from([0, 0.2, 0.5]))
@pytest.mark.slow
def test_parquet_units_give_the_same_files_as_one_unit(rows, unit, group, frac):
    if not any(rows):
        return
    with tempfile.TemporaryDirectory() as d:
        write_parquet(f"{d}/in.parquet", rows, row_group_size=group)
        from pathlib import Path
        assert run_in_process([f"{d}/in.parquet"], Path(d, "a"), unit, val_fraction=frac) == 0
        assert run_in_process([f"{d}/in.parquet"], Path(d, "b"), 1 << 30, val_fraction=frac) == 0
        a, b = outputs(Path(d, "a")), outputs(Path(d, "b"))
    assert a == b
    assert sorted(split_docs(read_list(a[0])) + split_docs(read_list(a[1]))) == \
        sorted(reference_docs([r for r in rows if r]))


def read_list(data):
    import numpy as np
    return np.frombuffer(data, np.uint16).tolist()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """txt with markers, a markerless txt (one document over many units), parquet with many row
    groups, JSON Lines: what a one-unit-per-file, one-reader run makes of them is the reference."""
    d = tmp_path_factory.mktemp("mixed")
    corpus.write_txt(d / "a.txt", 600_000, seed=21)
    (d / "b.txt").write_text(" ".join(next(corpus.documents(300_000, seed=22)) for _ in range(3)), encoding="utf-8")
    corpus.write_parquet(d / "c.parquet", 400_000, seed=23, rows_per_group=7)
    docs = list(corpus.documents(300_000, seed=24))
    with open(d / "d.jsonl", "w", encoding="utf-8") as f:
        import json
        f.writelines(json.dumps({"text": t}) + "\n" for t in docs)
    return [d / "a.txt", d / "b.txt", d / "c.parquet", d / "d.jsonl"]


@pytest.fixture(scope="module")
def mixed_reference(mixed, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "o"
    assert run_in_process(mixed, out, 1 << 30, val_fraction=0.01) == 0
    return outputs(out)


@pytest.mark.parametrize("readers", [1, 2, 4])
def test_reader_processes_give_the_same_bytes(mixed, mixed_reference, readers, tmp_path):
    """Units of 40 KB (documents span many), read by 1, 2 or 4 reader processes."""
    assert run_in_process(mixed, tmp_path / "o", 40_000, readers=readers, small=False,
                          val_fraction=0.01, chunk_size=5000) == 0
    assert outputs(tmp_path / "o") == mixed_reference


@pytest.mark.parametrize("shards", [1, 3, pytest.param(5, marks=pytest.mark.slow)])
def test_shards_then_merge_give_the_one_machine_bytes(mixed, mixed_reference, shards, tmp_path):
    out = tmp_path / "o"
    for i in range(shards):
        assert run_in_process(mixed, out, 40_000, shard=f"{i}/{shards}", readers=2, small=False) == 0
    assert run_in_process(mixed, out, 40_000, merge=True, val_fraction=0.01) == 0
    assert outputs(out) == mixed_reference


def test_merge_with_a_missing_unit_refuses_names_it_and_changes_nothing(mixed, tmp_path, capsys):
    out = tmp_path / "o"
    for i in (0, 2):
        assert run_in_process(mixed, out, 100_000, shard=f"{i}/3") == 0
    before = sorted(os.listdir(out))  # (and a lock file, which the OS releases)
    assert run_in_process(mixed, out, 100_000, merge=True) == 1
    err = capsys.readouterr().err
    assert "--merge needs every unit's part" in err and "unit 1 (" in err and "a.txt at byte 100,000" in err, err
    assert sorted(n for n in os.listdir(out) if n != ".prepare.lock") == before


# --- --merge: rerun after a failed merge, what it says, one set of parts for several outputs ------

@pytest.fixture(scope="module")
def four_txt(tmp_path_factory):
    """Four ~80 KB txt files (four units), their documents, and the total reference tokens."""
    d = tmp_path_factory.mktemp("four")
    paths, docs = [], []
    for k in range(4):
        path = d / f"in{k}.txt"
        corpus.write_txt(path, 80_000, seed=100 + k)
        paths.append(path)
        docs += txt_documents(path.read_text(encoding="utf-8"))
    return paths, reference_docs(docs)


def parts_then_failed_merge(inputs, out, args, parts_from=None):
    """The parts of two --shard runs (or a copy of them) in out, then a --merge whose summary
    cannot be written (a folder named summary.json.tmp), then the folder removed."""
    if parts_from:
        shutil.copytree(os.path.join(parts_from, "parts"), os.path.join(out, "parts"))
    else:
        for shard in ("0/2", "1/2"):
            r = run("--input", *inputs, "--out-dir", out, "--shard", shard)
            assert r.returncode == 0, r.stderr
    os.mkdir(os.path.join(out, "summary.json.tmp"))
    r = run("--input", *inputs, "--out-dir", out, "--merge", *args)
    assert r.returncode != 0 and "Traceback" not in r.stderr, \
        "a folder named summary.json.tmp no longer makes the summary write fail: update this test\n" + r.stderr
    os.rmdir(os.path.join(out, "summary.json.tmp"))
    return run("--input", *inputs, "--out-dir", out, "--merge", *args)


def llmc_shard_files(out):
    """name -> (bytes, sha256) of each llm.c shard."""
    return {os.path.basename(p): sha_and_size(p) for p in sorted(glob.glob(os.path.join(out, "fineweb_*.bin")))}


@pytest.mark.slow
def test_merge_with_max_tokens_rerun_after_its_final_checkpoint_adds_nothing(four_txt, tmp_path):
    """A --merge with --max-tokens rerun after a failed summary write, and once more when done, gives
    the one-machine bytes (train.bin and val.bin, and llm.c shards from the same parts)."""
    inputs, ref = four_txt
    budget = len(flat(ref)) // 2
    # nanoGPT's train.bin / val.bin
    args = ["--max-tokens", budget, "--val-fraction", 0.02]
    r = run("--input", *inputs, "--out-dir", tmp_path / "one", *args)
    assert r.returncode == 0, r.stderr
    kept = sorted(split_docs(read_bin(tmp_path / "one" / "train.bin")) +
                  split_docs(read_bin(tmp_path / "one" / "val.bin")))  # (the first documents)
    assert kept == sorted(ref[:len(kept)]) and len(flat(kept)) >= budget > len(flat(ref[:len(kept) - 1]))
    merged = tmp_path / "merged"
    r = parts_then_failed_merge(inputs, merged, args)
    assert r.returncode == 0, r.stderr
    assert helpers.digest(merged) == helpers.digest(tmp_path / "one")
    r = run("--input", *inputs, "--out-dir", merged, "--merge", *args)  # once more: already done
    assert r.returncode == 0, r.stderr
    assert helpers.digest(merged) == helpers.digest(tmp_path / "one")
    # llm.c shards, from the same parts
    args = ["--format", "llmc", "--max-tokens", budget, "--val-tokens", 2000, "--shard-tokens", 6000]
    r = run("--input", *inputs, "--out-dir", tmp_path / "one_llmc", *args)
    assert r.returncode == 0, r.stderr
    r = parts_then_failed_merge(inputs, tmp_path / "merged_llmc", args, parts_from=merged)
    assert r.returncode == 0, r.stderr
    want, got = llmc_shard_files(tmp_path / "one_llmc"), llmc_shard_files(tmp_path / "merged_llmc")
    assert len(want) >= 3 and list(got) == list(want)
    assert got == want
    one, two = summary_of(tmp_path / "one_llmc"), summary_of(tmp_path / "merged_llmc")
    assert [one[s] for s in ("train", "val")] == [two[s] for s in ("train", "val")]


def four_inputs(tmp_path):
    """Four small txt inputs of 100 documents each (four units)."""
    files = []
    for i in range(4):
        files.append(tmp_path / f"in{i}.txt")
        files[-1].write_text(txt_layout(DOCS_400[i * 100:(i + 1) * 100]))
    return files


def test_merge_names_the_changed_input_and_the_shard_to_rerun(tmp_path):
    """--merge names the input that changed, and for a missing part the shard to rerun."""
    files, out = four_inputs(tmp_path), tmp_path / "o"
    args = ["--input", *files, "--out-dir", out, "--val-fraction", 0.01]
    for i in range(2):
        assert run(*args, "--shard", f"{i}/2").returncode == 0
    os.utime(files[2], (1, 1))  # touch: another modification time
    r = run(*args, "--merge")
    assert_user_error(r, "in2.txt", "changed", "--shard")
    assert "unit 0" not in r.stderr
    for i in range(2):
        assert run(*args, "--shard", f"{i}/2").returncode == 0
    os.remove(out / "parts" / "unit0000003.bin")
    r = run(*args, "--merge")
    assert_user_error(r, "unit 3", "--shard 1/2")
    assert "--shard 0/2" not in r.stderr


def test_one_set_of_parts_merges_into_several_outputs(tmp_path):
    """One set of parts (--parts-dir) merges into several outputs, each what one machine writes."""
    files, parts = four_inputs(tmp_path), tmp_path / "parts"
    common = ["--input", *files, "--parts-dir", parts]
    for i in range(2):
        assert run(*common, "--out-dir", tmp_path / "x", "--shard", f"{i}/2").returncode == 0
    assert not (tmp_path / "x" / "parts").exists()
    r = run(*common, "--out-dir", tmp_path / "bin", "--merge", "--val-fraction", 0.01)
    assert r.returncode == 0, r.stderr
    r = run(*common, "--out-dir", tmp_path / "llmc", "--merge", "--format", "llmc", "--val-tokens", 1000)
    assert r.returncode == 0, r.stderr
    one = tmp_path / "one"
    assert run("--input", *files, "--out-dir", one, "--val-fraction", 0.01).returncode == 0
    for name in ("train.bin", "val.bin"):
        assert (tmp_path / "bin" / name).read_bytes() == (one / name).read_bytes()
    llmc = sorted((p for p in os.listdir(tmp_path / "llmc") if p.endswith(".bin")), key=lambda p: p[-10:])
    tokens = np.concatenate([np.fromfile(tmp_path / "llmc" / p, np.uint16)[512:] for p in llmc])
    assert tokens.tolist()[1:] + [50256] == flat(reference_docs(DOCS_400))


def test_a_merge_says_merging_and_a_shard_says_what_comes_next(tmp_path):
    """A --shard run says what comes next (--merge), and the merge's progress says merging."""
    files = four_inputs(tmp_path)
    args = ["--input", *files, "--out-dir", tmp_path / "o", "--val-fraction", 0.01]
    r = run(*args, "--shard", "0/1")
    assert r.returncode == 0 and "once more with --merge (and without --shard" in r.stdout, r.stdout
    r = run(*args, "--merge")   # what it says to do next
    assert r.returncode == 0 and re.search(r"^merging: \d+%", r.stderr, re.M) and "tokenizing" not in r.stderr, r.stderr
    docs = txt_documents("".join(f.read_text() for f in files))
    assert documents_in(tmp_path / "o") == len(docs)
    assert sorted(read_bin(tmp_path / "o" / "train.bin") + read_bin(tmp_path / "o" / "val.bin")) == \
        sorted(flat(reference_docs(docs)))


# --- real processes killed at random moments -----------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Seven inputs of ~0.6 MB: seven units at the default unit size."""
    d = tmp_path_factory.mktemp("files")
    paths = []
    for k in range(7):
        corpus.write_txt(d / f"{k}.txt", 600_000, seed=30 + k) if k % 2 else \
            corpus.write_parquet(d / f"{k}.parquet", 600_000, seed=30 + k, rows_per_group=50)
        paths.append(d / (f"{k}.txt" if k % 2 else f"{k}.parquet"))
    return paths


def digest(out, names=("train.bin", "val.bin")):
    return [hashlib.sha256((out / n).read_bytes()).hexdigest() for n in names]


@pytest.mark.slow
def test_sigkill_of_shards_and_of_the_merge_then_rerun_gives_the_same_bytes(files, tmp_path):
    one = tmp_path / "one"
    r = run("--input", *files, "--out-dir", one, "--val-fraction", 0.01)
    assert r.returncode == 0, r.stderr
    out, rng, parts = tmp_path / "o", random.Random(5), tmp_path / "o" / "parts"
    kills = 0
    for i in range(2):
        args = ["--input", *files, "--out-dir", out, "--shard", f"{i}/2"]
        kills += len(list(killed_at_random(args, lambda: parts.exists() and any(
            n.endswith(".json") for n in os.listdir(parts)), rng, times=4)))
        r = run(*args)
        assert r.returncode == 0, r.stderr
    assert kills >= 2
    args = ["--input", *files, "--out-dir", out, "--merge", "--val-fraction", 0.01, "--checkpoint-seconds", 0]
    list(killed_at_random(args, lambda: (out / "prepare.checkpoint.json").exists(), rng, times=3))
    r = run(*args)
    assert r.returncode == 0, r.stderr
    assert digest(out) == digest(one)


def test_a_second_run_of_the_same_shard_is_refused(files, tmp_path):
    out = tmp_path / "o"
    proc = start("--input", *files, "--out-dir", out, "--shard", "1/2")
    try:
        while not (out / ".prepare-share-1.lock").exists():
            time.sleep(0.01)
        proc.send_signal(signal.SIGSTOP)
        assert_user_error(run("--input", *files, "--out-dir", out, "--shard", "1/2"), "another run of this share")
        r = run("--input", *files, "--out-dir", out, "--shard", "0/2")  # another shard goes on
        assert r.returncode == 0, r.stderr
    finally:
        proc.kill()
        proc.communicate()


# --- Slurm: a job array of shards and a dependent merge, on a one-node cluster ---------------

SLURM = os.path.join(ROOT, "tests", "slurm", "start-local-slurm.sh")


@pytest.fixture(scope="module")
def slurm():
    """A one-node Slurm cluster (Debian's slurmctld, slurmd, munge; needs root and the packages,
    which tests/slurm/start-local-slurm.sh installs when it can)."""
    if os.geteuid() != 0:
        pytest.skip("starting Slurm needs root")
    r = subprocess.run(["bash", SLURM], capture_output=True, text=True, timeout=600)
    if r.returncode:
        pytest.skip(f"Slurm could not be started here: {(r.stderr or r.stdout).strip()[-300:]}")
    # jobs of an earlier run that was stopped midway stay in the controller's saved state and
    # would hold the node: cancel them
    subprocess.run(["scancel", f"--name={JOB_NAME}"], capture_output=True, timeout=60)
    yield
    subprocess.run(["bash", SLURM, "stop"], capture_output=True)


JOB_NAME = "prepare-test"


def sbatch(*args):
    r = subprocess.run(["sbatch", "--parsable", f"--job-name={JOB_NAME}", *args], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().split(";")[0]


@pytest.mark.slow
@pytest.mark.usefixtures("slurm")
def test_a_slurm_job_array_and_a_dependent_merge_give_the_one_machine_bytes(files, tmp_path):
    one = tmp_path / "one"
    r = run("--input", *files, "--out-dir", one, "--format", "llmc", "--val-tokens", 50_000,
            "--shard-tokens", 300_000)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "shared fs" / "out"
    command = f'"{shutil.which("python3") or "python3"}" "{SCRIPT}" --input ' + " ".join(f'"{f}"' for f in files) + \
        f' --out-dir "{out}" --format llmc --val-tokens 50000 --shard-tokens 300000 --workers 1'
    env = f"export TIKTOKEN_CACHE_DIR={os.environ['TIKTOKEN_CACHE_DIR']}\n"
    (tmp_path / "job.sh").write_text(f"#!/bin/bash\n{env}{command}\n")
    (tmp_path / "merge.sh").write_text(f"#!/bin/bash\n{env}{command} --merge\n")
    array = sbatch("--array=3-6", "--output", str(tmp_path / "task-%a.log"), str(tmp_path / "job.sh"))
    merge = sbatch(f"--dependency=afterok:{array}", "--output", str(tmp_path / "merge.log"), str(tmp_path / "merge.sh"))
    deadline = time.time() + 300
    while time.time() < deadline:
        q = subprocess.run(["squeue", "-h", "-j", f"{array},{merge}"], capture_output=True, text=True)
        if q.returncode == 0 and not q.stdout.strip():
            break
        time.sleep(1)
    logs = {p.name: p.read_text() for p in tmp_path.glob("*.log")}
    assert sorted(logs) == ["merge.log", "task-3.log", "task-4.log", "task-5.log", "task-6.log"], logs
    for k in range(4):  # array tasks 3..6 are shards 0..3 of 4
        assert f"done: share {k}/4" in logs[f"task-{k + 3}.log"], logs
    assert "done:" in logs["merge.log"], logs["merge.log"]
    names = sorted(n for n in os.listdir(one) if n.endswith(".bin"))
    assert names == sorted(n for n in os.listdir(out) if n.endswith(".bin")) and len(names) > 2
    assert digest(out, names) == digest(one, names)


def test_restart_of_a_shard_redoes_that_shards_parts_and_leaves_the_others(tmp_path):
    """--shard I/N --restart makes this share's parts again (a damaged one included) and keeps
    the other shards' parts."""
    paths = []
    for k in range(3):  # (three files: three units)
        paths.append(tmp_path / f"{k}.txt")
        paths[-1].write_text("".join(f"document {k}.{i} with some words\n<|endoftext|>" for i in range(500)))
    out = tmp_path / "o"
    for i in (0, 1):
        assert run("--input", *paths, "--out-dir", out, "--shard", f"{i}/3").returncode == 0
    parts = {n: (out / "parts" / n).read_bytes() for n in ("unit0000000.bin", "unit0000001.bin")}
    damaged = bytes(len(parts["unit0000000.bin"]))
    (out / "parts" / "unit0000000.bin").write_bytes(damaged)
    (out / "parts" / "unit0000001.bin").write_bytes(damaged[:len(parts["unit0000001.bin"])])
    r = run("--input", *paths, "--out-dir", out, "--shard", "0/3", "--restart")
    assert r.returncode == 0 and "1 unit written" in r.stdout, r.stdout + r.stderr
    assert (out / "parts" / "unit0000000.bin").read_bytes() == parts["unit0000000.bin"]
    assert (out / "parts" / "unit0000001.bin").read_bytes() != parts["unit0000001.bin"], "another share's part was redone"
