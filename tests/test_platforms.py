"""Runs everywhere nanoGPT runs. Linux CI cannot run macOS or Windows, so what differs there is
emulated for real in child processes (a sitecustomize on their PYTHONPATH): only the spawn start
method, no fcntl, no CPU affinity, a Windows-style byte-range lock (msvcrt.locking) and folders
that cannot be opened for fsync. Also: paths with spaces and non-ASCII characters, a console that
cannot show them, the Python floor."""
import glob
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from helpers import (FAST_CHECKPOINTS, ROOT, SCRIPT, assert_user_error, digest, flat, interrupt,
                     read_bin, reference_docs, run, start, txt_layout, wait_for_progress,
                     write_parquet)
from prep.cli import make_config
from prep.config import MIN_VERSIONS, SPLINTR_VERSIONS

EMULATION = textwrap.dedent('''
    """What differs on macOS and Windows, emulated in this Python process and its children."""
    import errno, multiprocessing, os, sys, types
    import fcntl as _fcntl

    multiprocessing.set_start_method("spawn", force=True)   # macOS's and Windows' default
    for name in ("sched_getaffinity", "process_cpu_count"):  # macOS: no affinity
        if hasattr(os, name):
            delattr(os, name)
    sys.modules["fcntl"] = None   # Windows: "import fcntl" fails

    def locking(fd, mode, nbytes):
        """msvcrt.locking's contract: lock nbytes from the current position; a held lock
        raises OSError(EACCES); the OS drops it when the process dies."""
        if os.environ.get("EMULATE_NO_LOCKS"):   # a network file system that refuses locks
            raise OSError(errno.ENOLCK, "No locks available")
        try:
            _fcntl.lockf(fd, _fcntl.LOCK_UN if mode == 0 else _fcntl.LOCK_EX | _fcntl.LOCK_NB,
                         nbytes, 0, os.SEEK_CUR)
        except BlockingIOError:
            raise PermissionError(errno.EACCES, "Permission denied") from None

    # (the standard library takes an importable msvcrt for Windows: let it settle first)
    import subprocess, multiprocessing.connection, multiprocessing.popen_spawn_posix  # noqa
    import multiprocessing.resource_tracker, concurrent.futures, tempfile, platform  # noqa
    sys.modules["msvcrt"] = types.SimpleNamespace(LK_UNLCK=0, LK_LOCK=1, LK_NBLCK=2, locking=locking)

    class OpenNoFolders:   # Windows cannot open a folder (a class: pathlib binds functions)
        def __call__(self, path, flags, *args, _open=os.open, **kwargs):
            if os.path.isdir(path):
                raise PermissionError(errno.EACCES, "Permission denied", path)
            return _open(path, flags, *args, **kwargs)
    os.open = OpenNoFolders()
''')


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    """The environment for a child process that behaves as on Windows/macOS."""
    site = tmp_path_factory.mktemp("site")
    (site / "sitecustomize.py").write_text(EMULATION)
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    probe = subprocess.run(
        [sys.executable, "-c", "import os, sys, multiprocessing as mp; import msvcrt; "
         "print(hasattr(os, 'sched_getaffinity'), sys.modules['fcntl'], mp.get_start_method())"],
        env=dict(os.environ, **env), capture_output=True, text=True)
    assert probe.stdout.split() == ["False", "None", "spawn"], probe.stderr  # the emulation is on
    return env


@pytest.mark.slow
def test_emulated_run_stopped_with_ctrl_c_and_resumed_equals_a_linux_run(inputs, emulated, tmp_path):
    args = ["--val-fraction", 0.01, *FAST_CHECKPOINTS]
    r = run("--input", *inputs, "--out-dir", tmp_path / "linux", *args)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "emulated"
    proc = start("--input", *inputs, "--out-dir", out, *args, env=emulated)
    wait_for_progress(out, proc, pause=True)
    interrupt(proc, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "run the same command to continue" in err, err
    assert "Traceback" not in err and not (out / "train.bin").exists()
    r = run("--input", *inputs, "--out-dir", out, *args, env=emulated)
    assert r.returncode == 0, r.stderr
    assert digest(out) == digest(tmp_path / "linux")


def test_fallback_lock_refuses_a_second_run_and_dies_with_the_first(inputs, emulated, tmp_path):
    out = tmp_path / "out"
    first = start("--input", *inputs, "--out-dir", out, *FAST_CHECKPOINTS, env=emulated)
    try:
        wait_for_progress(out, first, pause=True)  # paused, it still holds the folder
        r = run("--input", *inputs, "--out-dir", out, env=emulated)
        assert_user_error(r, "another prepare.py run", str(out))
    finally:
        first.kill()
        first.communicate()
    r = run("--input", *inputs, "--out-dir", out, env=emulated)
    assert r.returncode == 0, r.stderr


def test_a_file_system_without_locks_gets_a_warning_not_a_stop(emulated, tmp_path):
    (tmp_path / "in.txt").write_text(txt_layout(["A document.", "Another one."]), encoding="utf-8")
    r = run("--input", tmp_path / "in.txt", "--out-dir", tmp_path / "o",
            env=dict(emulated, EMULATE_NO_LOCKS="1"))
    assert r.returncode == 0, r.stderr
    assert "does not support file locks" in r.stderr and "Traceback" not in r.stderr


DOCS = ["Première ligne — ünïcödé.", "中文文本和日本語のテキスト。", "Plain words, and numbers 12345."] * 50


def test_paths_with_spaces_and_non_ascii_characters_on_a_console_that_cannot_show_them(emulated, tmp_path):
    """Windows with output redirected writes cp1252: names it cannot show are escaped, not fatal."""
    folder = tmp_path / "my data" / "ünï cödé 中文"
    folder.mkdir(parents=True)
    (folder / "train fineweb 中文.txt").write_text(txt_layout(DOCS[:60]), encoding="utf-8")
    write_parquet(folder / "données été.parquet", DOCS[60:])
    out = tmp_path / "out dir" / "データ"
    console = dict(env=dict(emulated, PYTHONIOENCODING="cp1252"), encoding="cp1252")
    r = run("--input", folder, "--out-dir", out, "--val-fraction", 0, **console)
    assert r.returncode == 0, r.stderr
    assert read_bin(out / "train.bin") == flat(reference_docs(DOCS[60:] + DOCS[:60]))  # by name
    assert "done:" in r.stdout and "\\u30c7" in r.stdout  # データ, escaped
    r = run("--verify", "--out-dir", out, **console)
    assert r.returncode == 0 and "Première ligne" in r.stdout, r.stderr
    r = run("--input", folder / "missing 中文.txt", "--out-dir", out, **console)
    assert_user_error(r, "missing \\u4e2d\\u6587.txt", "no such file")


@pytest.mark.unit
def test_default_workers_are_the_cpus_this_process_may_use(monkeypatch):
    if hasattr(os, "process_cpu_count"):
        assert make_config([]).workers == os.process_cpu_count()
        monkeypatch.delattr(os, "process_cpu_count")
    if hasattr(os, "sched_getaffinity"):
        assert make_config([]).workers == len(os.sched_getaffinity(0))
        monkeypatch.delattr(os, "sched_getaffinity")
    assert make_config([]).workers == os.cpu_count()


def test_python_older_than_the_floor_gets_one_sentence(tmp_path):
    """The check runs before anything 3.8 cannot parse or import (no packages needed)."""
    old = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8*/bin/python3")))
    assert old, "no Python 3.8 here (pyenv versions): the floor cannot be checked"
    r = subprocess.run([old[-1], SCRIPT, "--input", tmp_path / "x.txt"], capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("error: this script needs Python 3.9 or newer, and this is Python 3.8")
    assert r.stderr.count("\n") == 1


@pytest.fixture(scope="module")
def oldest_python():
    """A Python 3.9 environment with the oldest versions the script claims (MIN_VERSIONS), built
    once from the package registry and kept in .cache/."""
    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3")))
    assert found, "no Python 3.9 here (pyenv versions): the oldest versions cannot be checked"
    pins = [f"{name}=={v}" for name, v in sorted(MIN_VERSIONS.items())]
    venv = os.path.join(ROOT, ".cache", "oldest-" + "-".join(pins))
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(os.path.join(venv, "ready")):
        subprocess.run([found[-1], "-m", "venv", "--clear", venv], check=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--only-binary", ":all:", *pins, "pytest", "hypothesis", "regex", "psutil"],
                       check=True)
        open(os.path.join(venv, "ready"), "w").close()
    return python


@pytest.mark.slow
def test_the_exactness_tests_pass_with_the_oldest_supported_versions(oldest_python):
    """Python 3.9, numpy 1.x, tiktoken without encode_to_numpy, an old pyarrow: the same tokens."""
    # (but for a document of 2M characters without whitespace, which tiktoken before 0.8 cannot
    # encode: its stack overflows; the script then says to upgrade it)
    r = subprocess.run([oldest_python, "-m", "pytest", "-o", "addopts=", "-q", "-x", "-p", "no:cacheprovider",
                        os.path.join(ROOT, "tests", "test_exact.py"), "-k", "not marker_read_in_part"],
                       cwd=ROOT, env=dict(os.environ, EXACT_EXAMPLES="12"), capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert " passed" in r.stdout and " skipped" not in r.stdout


@pytest.mark.slow  # (its environment takes ~40 s to build in a fresh clone)
def test_a_package_older_than_the_floor_gets_one_sentence(oldest_python, tmp_path):
    """tiktoken 0.4.0, one release below the floor, found first on the path."""
    subprocess.run([oldest_python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--only-binary", ":all:", "--no-deps", "--target", tmp_path / "old", "tiktoken==0.4.0"],
                   check=True)
    (tmp_path / "in.txt").write_text("hello")
    r = subprocess.run([oldest_python, SCRIPT, "--input", tmp_path / "in.txt", "--out-dir", tmp_path / "o"],
                       env=dict(os.environ, PYTHONPATH=str(tmp_path / "old")), capture_output=True, text=True)
    assert_user_error(r, f"tiktoken 0.4.0 is older than this script supports "
                         f"({MIN_VERSIONS['tiktoken']} or newer); run: pip install -U tiktoken")
    assert r.stderr.count("\n") == 1


@pytest.mark.unit
def test_requirements_name_the_floors_the_script_checks():
    """... and splintr-rs, where it has wheels, in the release the tests cover."""
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        lines = [line.strip() for line in f if line.strip()]
    assert dict(line.split(">=") for line in lines if ";" not in line) == MIN_VERSIONS
    low, high = SPLINTR_VERSIONS
    assert high == (*low[:2], low[2] + 1)  # (one release: the one pinned)
    assert [line for line in lines if ";" in line] == \
        [f'splintr-rs=={".".join(map(str, low))}; python_version >= "3.10"']


def spawned_modules(*imports):
    """The modules a process started as a spawned reader is holds: the entry run as __mp_main__
    (as multiprocessing's spawn runs it), then the imports its work needs."""
    code = (f"import runpy, sys; sys.path.insert(0, {os.path.dirname(SCRIPT)!r}); "
            f"runpy.run_path({SCRIPT!r}, run_name='__mp_main__'); "
            + "".join(f"import {m}; " for m in imports) + "print(' '.join(sorted(sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


def test_a_reader_process_imports_no_numpy_tiktoken_or_tqdm():
    """A reader reads and cuts text: it loads none of the encoding side (~25 MiB each), which
    the package keeps by its module boundaries (prep/__init__.py)."""
    loaded = spawned_modules("prep.readers")
    assert "prep.readers" in loaded and "prep.kinds" in loaded
    assert not {"numpy", "tiktoken", "tqdm", "pyarrow"} & loaded, sorted(loaded)
    assert not {m for m in loaded if m.startswith("prep.")} & {"prep.tokenizers", "prep.run", "prep.cli"}


def test_copying_prepare_py_alone_says_what_to_copy(tmp_path):
    shutil.copy(SCRIPT, tmp_path / "prepare.py")
    r = subprocess.run([sys.executable, tmp_path / "prepare.py", "--help"], capture_output=True, text=True)
    assert_user_error(r, "copy the whole folder data/fineweb")
