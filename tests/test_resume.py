"""Stopping and resuming, with real signals to a real process."""
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest

import corpus
from helpers import (DOCS_400, FAST_CHECKPOINTS, SCRIPT, assert_user_error, checkpoint, digest, flat, interrupt,
                     killed_at_random, read_bin, reference_docs, run, start, txt_layout, wait_for_progress)
from prep.cli import make_config
from prep.config import MAX_SEARCH, UserError
from prep.formats import take_lock
from prep.inputs import open_inputs, plan_units
from prep.readers import read_unit

@pytest.fixture(scope="module")
def corpus_txt(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    corpus.write_txt(d / "a.txt", 5 << 20, seed=1)
    corpus.write_parquet(d / "b.parquet", 2 << 20, seed=2, rows_per_group=100)
    corpus.write_txt(d / "c.txt", 2 << 20, seed=3)
    return [d / "a.txt", d / "b.parquet", d / "c.txt"]


@pytest.fixture(scope="module")
def uninterrupted(corpus_txt, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    r = run("--input", *corpus_txt, "--out-dir", out, "--val-fraction", 0.01)
    assert r.returncode == 0, r.stderr
    return digest(out)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_at_random_moments_then_resume_gives_identical_files(
        corpus_txt, uninterrupted, tmp_path, workers):
    rng = random.Random(workers)
    out, kills, positions = tmp_path / "out", 0, []
    args = ["--input", *corpus_txt, "--out-dir", out, "--val-fraction", 0.01,
            "--workers", workers, *FAST_CHECKPOINTS]
    progress = lambda: (checkpoint(out) or {}).get("split", {}).get("tokens", [0])[0] > 0
    for _ in killed_at_random(args, progress, rng, times=6):
        kills += 1
        assert not (out / "train.bin").exists(), "unfinished output sits where train.py reads"
        cp = checkpoint(out)
        positions.append((cp["next_unit"], sum((cp["unit_state"] or {}).get(k) or 0 for k in ("offset", "row"))))
    assert kills >= 2, "the run finished before it could be killed twice"
    assert positions == sorted(positions), "a resumed run went backwards"
    r = run(*args)
    assert r.returncode == 0, r.stderr
    assert digest(out) == uninterrupted


@pytest.mark.slow  # (test_sigterm_stops_cleanly is the fast tier's)
def test_sigint_stops_cleanly_and_resumes_where_it_stopped(corpus_txt, uninterrupted, tmp_path):
    out = tmp_path / "out"
    args = ["--input", *corpus_txt, "--out-dir", out, "--val-fraction", 0.01, *FAST_CHECKPOINTS]
    proc = start(*args)
    wait_for_progress(out, proc, pause=True)
    interrupt(proc, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    stopped = re.search(r"stopped at (\d+)%; run the same command to continue", err)
    assert stopped, err
    assert not (out / "train.bin").exists()
    # the progress bar starts where the run stopped, not at 0
    r = run(*args)
    assert r.returncode == 0, r.stderr
    first = re.search(r"tokenizing:\s+(\d+)%", r.stderr)
    assert first and int(first.group(1)) == int(stopped.group(1)), r.stderr[:300]
    assert digest(out) == uninterrupted


def test_sigterm_stops_cleanly(corpus_txt, tmp_path):
    out = tmp_path / "out"
    proc = start("--input", *corpus_txt, "--out-dir", out, *FAST_CHECKPOINTS)
    wait_for_progress(out, proc, pause=True)
    interrupt(proc, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "run the same command to continue" in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("nth", [1, 5])  # (1: the files exist, the first checkpoint does not record them)
def test_kill_between_data_write_and_checkpoint(corpus_txt, uninterrupted, nth, tmp_path):
    out = tmp_path / "out"
    args = ["--input", *corpus_txt, "--out-dir", out, "--val-fraction", 0.01, *FAST_CHECKPOINTS]
    r = run(*args, env={"PREPARE_TEST_KILL_BEFORE_CHECKPOINT": str(nth)})
    assert r.returncode == -signal.SIGKILL
    cp = checkpoint(out)
    written = os.path.getsize(out / "train.bin.partial")
    assert written > cp["split"]["tokens"][0] * 2, "the data after the checkpoint was not on disk"
    r = run(*args)
    assert r.returncode == 0, r.stderr
    assert digest(out) == uninterrupted


def stopped_run(corpus_txt, out, *extra):
    proc = start("--input", *corpus_txt, "--out-dir", out, *FAST_CHECKPOINTS, *extra)
    wait_for_progress(out, proc, pause=True)
    interrupt(proc, signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130


def snapshot(out):
    """The folder's files (but the lock file, which a killed run leaves and the next run removes as it ends)."""
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name != ".prepare.lock"}


@pytest.mark.slow
def test_changed_input_or_option_is_refused_and_nothing_written(corpus_txt, tmp_path):
    inputs = list(corpus_txt)
    out = tmp_path / "out"
    stopped_run(inputs, out)
    before = snapshot(out)
    r = run("--input", *inputs, "--out-dir", out, "--val-fraction", 0.2)
    assert_user_error(r, "--val-fraction", "--restart")
    r = run("--input", *inputs, "--out-dir", out, "--encoding", "r50k_base")
    assert_user_error(r, "--encoding", "--restart")
    r = run("--input", *inputs[:2], "--out-dir", out)
    assert_user_error(r, "input files", "--restart")
    copy = tmp_path / "a.txt"
    copy.write_bytes(inputs[0].read_bytes() + b"more")
    r = run("--input", copy, *inputs[1:], "--out-dir", out)
    assert_user_error(r, "input files")
    assert snapshot(out) == before
    # worker count and chunk size cannot change the bytes: resuming with others is fine
    r = run("--input", *inputs, "--out-dir", out, "--workers", 1, "--chunk-size", 777)
    assert r.returncode == 0, r.stderr


def test_second_run_on_the_same_folder_is_refused_at_once(corpus_txt, tmp_path):
    out = tmp_path / "out"
    proc = start("--input", *corpus_txt, "--out-dir", out, *FAST_CHECKPOINTS)
    try:
        wait_for_progress(out, proc, pause=True)  # paused, it still holds the folder
        t = time.time()
        r = run("--input", *corpus_txt, "--out-dir", out)
        assert time.time() - t < 10
        assert_user_error(r, "another prepare.py run", str(out))
    finally:
        proc.kill()
        proc.communicate()
    # the dead run's lock does not block the next one
    r = run("--input", *corpus_txt, "--out-dir", out)
    assert r.returncode == 0, r.stderr


def test_finished_run_says_done_and_restart_redoes_it(corpus_txt, uninterrupted, tmp_path):
    out = tmp_path / "out"
    args = ["--input", *corpus_txt, "--out-dir", out, "--val-fraction", 0.01]
    assert run(*args).returncode == 0
    mtime = os.path.getmtime(out / "train.bin")
    r = run(*args)
    assert r.returncode == 0 and "already done" in r.stderr, r.stderr
    assert os.path.getmtime(out / "train.bin") == mtime
    r = run(*args, "--val-fraction", 0.02)
    assert_user_error(r, "different run", "--restart")
    stopped_run(corpus_txt, out, "--restart", "--val-fraction", 0.01)
    assert not (out / "train.bin").exists(), "--restart keeps old output where train.py reads"
    r = run(*args)
    assert r.returncode == 0, r.stderr
    assert digest(out) == uninterrupted


def test_a_checkpoint_of_another_shape_is_refused_with_a_sentence(corpus_txt, uninterrupted, tmp_path):
    """The checkpoint file is the asdict of the run's state: one whose fields this version does
    not know (another version's) is refused, naming --restart, which then redoes the run."""
    out = tmp_path / "out"
    args = ["--input", *corpus_txt, "--out-dir", out, "--val-fraction", 0.01, *FAST_CHECKPOINTS]
    assert run(*args, env={"PREPARE_TEST_KILL_BEFORE_CHECKPOINT": "5"}).returncode == -signal.SIGKILL
    cp = checkpoint(out)
    cp["split"]["pieces_done"] = cp["split"].pop("piece")
    (out / "prepare.checkpoint.json").write_text(json.dumps(cp))
    assert_user_error(run(*args), "another version", "--restart")
    r = run(*args, "--restart")
    assert r.returncode == 0, r.stderr
    assert digest(out) == uninterrupted


def test_a_finished_run_whose_files_are_gone_is_not_done(corpus_txt, tmp_path):
    out = tmp_path / "out"
    args = ["--input", *corpus_txt, "--out-dir", out, "--val-fraction", 0.01]
    assert run(*args).returncode == 0
    os.remove(out / "val.bin")
    r = run(*args)
    assert_user_error(r, "files missing", "--restart")
    assert "already done" not in r.stdout + r.stderr


def test_token_files_of_unknown_origin_are_not_overwritten(corpus_txt, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.bin").write_bytes(b"\x01\x00" * 10)
    r = run("--input", *corpus_txt, "--out-dir", out)
    assert_user_error(r, "already holds token files", "train.bin", "--restart")
    assert (out / "train.bin").read_bytes() == b"\x01\x00" * 10


def test_an_in_progress_file_shorter_than_its_checkpoint_is_refused(corpus_txt, uninterrupted, tmp_path):
    out = tmp_path / "out"
    args = ["--input", *corpus_txt, "--out-dir", out, "--val-fraction", 0.01, *FAST_CHECKPOINTS]
    assert run(*args, env={"PREPARE_TEST_KILL_BEFORE_CHECKPOINT": "3"}).returncode == -signal.SIGKILL
    recorded = checkpoint(out)["split"]["tokens"][0] * 2
    assert recorded > 0
    os.truncate(out / "train.bin.partial", recorded - 2)   # (zeros would fill it back up)
    assert_user_error(run(*args), "train.bin.partial", "shorter than its checkpoint", "--restart")
    r = run(*args, "--restart")
    assert r.returncode == 0, r.stderr
    assert digest(out) == uninterrupted
@pytest.mark.slow
def test_a_refused_resume_names_only_what_changed_and_what_finishes_it(tmp_path):
    """The refusal names each option that changed, with its value then and now, and not one that
    only --format's default changed (the shard prefix); a changed input file is to be restored
    (the same command cannot finish it); a --doc-token given as the default changes nothing."""
    (tmp_path / "in.txt").write_text(txt_layout([f"document {i} with some words" for i in range(20000)]))
    out = tmp_path / "out"
    args = ["--input", tmp_path / "in.txt", "--out-dir", out, "--format", "llmc", *FAST_CHECKPOINTS]
    assert run(*args, "--val-tokens", 1000, env={"PREPARE_TEST_KILL_BEFORE_CHECKPOINT": "3"}).returncode < 0
    before = snapshot(out)
    r = run(*args, "--val-tokens", 2000, "--format", "npy")
    assert_user_error(r, "--format was llmc, now npy", "the val split was --val-tokens 1,000, now --val-tokens 2,000",
                      "give it the options it began with", "--restart")
    assert "--prefix" not in r.stderr and "same command" not in r.stderr, r.stderr
    r = run(*args, "--val-tokens", 1000, "--format", "bin", "--max-tokens", 10**6)  # (keys bin does not have)
    assert_user_error(r, "--format was llmc, now bin", "--max-tokens was none, now 1,000,000")
    stat = os.stat(tmp_path / "in.txt")
    os.utime(tmp_path / "in.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    r = run(*args, "--val-tokens", 1000)
    assert_user_error(r, f"input files changed since the run began: {tmp_path / 'in.txt'}",
                      "restore the changed files", "--restart")
    assert "options" not in r.stderr.split("to finish it")[1] and "same command" not in r.stderr, r.stderr
    assert snapshot(out) == before
    os.utime(tmp_path / "in.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    r = run(*args, "--val-tokens", 1000, "--doc-token", "<|endoftext|>")
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("shard", [False, True])
def test_progress_after_a_resume_counts_the_whole_runs_tokens(shard, tmp_path):
    """After a resume the progress lines count the tokens of the whole run (the last one: all
    of them, as a one-shot encoding gives), and the rate says it is of this session."""
    docs = [f"document {i} with some words" for i in range(30000)]
    paths = [tmp_path / f"{k}.txt" for k in range(4)]  # (a shard resumes at a unit: four of them)
    for k, path in enumerate(paths):
        path.write_text(txt_layout(docs[k::4]))
    want = sum(len(d) for d in reference_docs(docs))
    what = ["--shard", "0/1"] if shard else []
    args = ["--input", *paths, "--out-dir", tmp_path / "o", *what, *FAST_CHECKPOINTS]
    killed = run(*args, env={"PREPARE_TEST_KILL_BEFORE_CHECKPOINT": "5"}) if not shard else None
    if shard:  # (a share's run (--shard) has no checkpoints: it is killed once it has finished a unit)
        proc = start(*args)
        while not (tmp_path / "o" / "parts" / "unit0000000.json").exists():
            time.sleep(0.01)
        proc.kill()
        proc.communicate()
    else:
        assert killed.returncode < 0
    r = run(*args)
    assert r.returncode == 0, r.stderr
    lines = re.findall(r"^.+: (\d+)% .*?, ([\d,]+) tokens, [\d.]+M tokens/s( since the resume)?", r.stderr, re.M)
    assert int(lines[0][0]) > 0 and int(lines[0][1].replace(",", "")) > 0, r.stderr
    assert all(since for *_, since in lines), r.stderr
    assert lines[-1][:2] == ("100", f"{want:,}"), r.stderr


@pytest.mark.slow
def test_no_lock_file_stays_after_a_run_ends(tmp_path):
    """A finished, a stopped, a refused and a share's run each remove their lock file as they end."""
    (tmp_path / "in.txt").write_text(txt_layout([f"document {i} with some words" for i in range(40000)]))
    inputs, out = [tmp_path / "in.txt"], tmp_path / "out"
    stopped_run(inputs, out)
    assert not (out / ".prepare.lock").exists(), "a stopped run left its lock file"
    assert_user_error(run("--input", *inputs, "--out-dir", out, "--val-fraction", 0.3), "--restart")
    assert run("--input", *inputs, "--out-dir", out).returncode == 0
    assert run("--input", *inputs, "--out-dir", out, "--shard", "0/1").returncode == 0
    assert sorted(n for n in os.listdir(out) if n.startswith(".")) == [], os.listdir(out)


@pytest.mark.unit
def test_a_lock_file_removed_as_a_run_ends_lets_no_second_run_in(tmp_path, monkeypatch):
    """A run that opened the lock file just before the run holding it ended (and removed it)
    must not hold the removed file: a third run would then take a new one beside it."""
    folder, name = str(tmp_path), ".prepare.lock"
    first = take_lock(folder, name, "run is writing to")
    real_open, ended = os.open, []

    def open_as_the_first_run_ends(path, *args):
        fd = real_open(path, *args)
        if not ended:  # the first run ends now, as a run ends: the file removed while held, then closed
            ended.append(True)
            os.remove(os.path.join(folder, name))
            os.close(first[1] if isinstance(first, tuple) else first)
        return fd

    monkeypatch.setattr(os, "open", open_as_the_first_run_ends)
    second = take_lock(folder, name, "run is writing to")
    monkeypatch.setattr(os, "open", real_open)
    with pytest.raises(UserError, match="another run is writing to"):
        take_lock(folder, name, "run is writing to")
    assert second


# --- signals in the first seconds and while stopping ----------------------------------------------

def message_lines(stderr):
    """stderr without the progress bar: the lines a person reads."""
    lines = (line.split("\r")[-1].strip() for line in stderr.split("\n"))
    return [line for line in lines if line and not line.startswith("tokenizing")]


@pytest.fixture(scope="module")
def txt20(tmp_path_factory):
    """A 20 MB txt (reader processes are spawned) and the digest of an uninterrupted run."""
    d = tmp_path_factory.mktemp("txt20")
    corpus.write_txt(d / "in.txt", 20 << 20, seed=61)
    r = run("--input", d / "in.txt", "--out-dir", d / "whole", "--val-fraction", 0.01)
    assert r.returncode == 0, r.stderr
    return d / "in.txt", digest(d / "whole")


def interpreter_startup():
    """Seconds Python takes here before it runs a script's first line (the slowest of 3). A signal
    before then meets Python's own startup, which no script can handle: SIGINT stops it with
    "Fatal Python error: init_import_site", SIGTERM kills it silently."""
    times = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - t)
    return max(times)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_in_the_first_seconds_stops_cleanly_and_resumes(txt20, sig, tmp_path):
    """The moments count from when the script starts running (imports, the reader's spawn, the
    first chunks); then the same command finishes with the bytes of an uninterrupted run."""
    path, whole = txt20
    startup = interpreter_startup() + 0.02
    for delay in (0.05, 0.3, 0.8, 1.5, 2.5):
        out = tmp_path / f"out{delay}"
        args = [sys.executable, SCRIPT, "--input", str(path), "--out-dir", str(out), "--val-fraction", "0.01"]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        time.sleep(startup + delay)
        try:
            os.killpg(proc.pid, sig)  # (as Ctrl-C reaches the whole process group)
        except ProcessLookupError:
            pass
        _, err = proc.communicate(timeout=60)
        assert "Traceback" not in err, (delay, err)
        assert proc.returncode in (128 + sig, 0), (delay, proc.returncode, err)
        if proc.returncode:
            said = message_lines(err)
            assert len(said) == 1, (delay, err)
        r = run(*args[2:])
        assert r.returncode == 0, (delay, r.stderr)
        assert digest(out) == whole, delay


def test_a_second_stop_signal_says_what_was_kept(tmp_path):
    """A second stop signal while stopping says what was kept and how to go on."""
    (tmp_path / "a.txt").write_text(txt_layout(DOCS_400 * 400))
    out = tmp_path / "o"
    proc = start("--input", tmp_path / "a.txt", "--out-dir", out, "--chunk-size", 20000, "--checkpoint-seconds", 0)
    wait_for_progress(out, proc, pause=True)
    proc.send_signal(signal.SIGINT)  # (two different signals stay pending together while stopped)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "stopped at once" in err and "run the same command to continue" in err


# --- resuming inside long documents; a checkpoint that recorded nothing ---------------------------

@pytest.mark.slow
def test_long_documents_come_in_bounded_chunks_and_resume_anywhere(tmp_path):
    """Documents longer than a chunk come in bounded chunks, only the last of a document has a place
    to resume at, and a kill before any of the first checkpoints resumes to the same bytes."""
    pool = list(corpus.documents(2_000_000, seed=3))
    long_docs = [" ".join(pool[i::7]) for i in range(7)]  # ~290K characters each
    assert min(map(len, long_docs)) > 200_000
    rows = [long_docs[0], "short one", long_docs[1], long_docs[2], "another short one", *long_docs[3:]]
    (tmp_path / "long.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in rows))
    config = make_config(["--input", str(tmp_path / "long.jsonl"), "--out-dir", str(tmp_path / "o"),
                                  "--chunk-size", "20000"], piece_chars=100_000)
    inputs = open_inputs(config)
    chunks = list(read_unit(inputs, plan_units(inputs, config)[0], None, config))
    sizes = [sum(len(seg.text) for seg in c.segments) for c in chunks]
    assert max(sizes) < 2 * 20_000 + 100_000 + MAX_SEARCH and len(chunks) > 10, sizes
    assert any(c.place is None and not c.finished for c in chunks)  # (chunks inside a document: no position)
    args = ["--input", tmp_path / "long.jsonl", "--val-fraction", 0.3, "--chunk-size", 20000,
            "--checkpoint-seconds", 0, "--workers", 1]
    whole = tmp_path / "whole"
    assert run(*args, "--out-dir", whole).returncode == 0
    assert read_bin(whole / "train.bin") + read_bin(whole / "val.bin") != []
    for n in (1, 2, 3, 5, 8):
        out = tmp_path / f"k{n}"
        r = run(*args, "--out-dir", out, env={"PREPARE_TEST_KILL_BEFORE_CHECKPOINT": str(n)})
        assert r.returncode != 0 or not (out / "prepare.checkpoint.json").exists()
        r = run(*args, "--out-dir", out)
        assert r.returncode == 0, r.stderr
        for name in ("train.bin", "val.bin"):
            assert (out / name).read_bytes() == (whole / name).read_bytes(), (n, name)
    ref = reference_docs(rows)
    got = read_bin(whole / "train.bin") + read_bin(whole / "val.bin")
    assert sorted(got) == sorted(flat(ref))


def test_a_checkpoint_that_recorded_no_tokens_does_not_block_other_options(tmp_path):
    """A checkpoint that recorded no tokens does not block a run with other options."""
    (tmp_path / "a.txt").write_text(txt_layout(DOCS_400))
    out = tmp_path / "o"
    out.mkdir()
    (out / "prepare.checkpoint.json").write_text(json.dumps(dict(fingerprint={"other": 1}, files=None)))
    r = run("--input", tmp_path / "a.txt", "--out-dir", out, "--val-fraction", 0.01)
    assert r.returncode == 0, r.stderr
