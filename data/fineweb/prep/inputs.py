"""The inputs of a run: which files, each checked, and the units of work they make."""
from __future__ import annotations

import glob
import os
import sys
from typing import Optional

from .config import Config, DEFAULT_INPUT, UserError
from .cutting import Place
from .streams import COMPRESSIONS, Input, Unit, arrow
from .kinds import KINDS, SUPPORTED, bad_input, left_out
from .formats import PART_NAME, is_output_name


def kind_of(path: str) -> Optional[tuple]:
    """(kind, compression suffix or ''), or None for a file this script does not read."""
    name = path.lower()
    comp = next((c for c in COMPRESSIONS if name.endswith(c)), "")
    name = name[:len(name) - len(comp)]
    for kind, rules in KINDS.items():
        if name.endswith(rules.suffixes) and (rules.compressible or not comp):
            return kind, comp
    return None


def files_in(folder, skip):
    """The files under folder this script reads, at any depth, sorted by their path relative to
    it (folder by folder, as FineWeb's own sample/10BT/000_00000.parquet...), and the links among
    them whose target is missing (an interrupted download). Symlinks to files and to folders are
    followed (the Hugging Face cache); hidden files and folders, skip, and this script's own files (its output)
    are left out."""
    found, broken, seen = [], [], {os.path.realpath(folder): folder}
    for top, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in sorted(dirs) if not d.startswith(".") and
                   os.path.realpath(os.path.join(top, d)) != skip and first_visit(os.path.join(top, d), seen)]
        rel = os.path.relpath(top, folder).split(os.sep) if top != folder else []
        for f in files:
            path = os.path.join(top, f)
            if f.startswith(".") or not kind_of(f) or is_output_name(f) or PART_NAME.fullmatch(f):
                continue
            if os.path.isfile(path):
                found.append((rel + [f], path))
            elif not os.path.exists(path):
                broken.append(path)
    return [path for _, path in sorted(found)], sorted(broken)


def first_visit(path, seen: dict) -> bool:
    """Whether the folder at path is read: each folder once (seen: its real path -> the path it is
    read at), whatever links lead to it; a link to a folder above it (a loop) or to one read
    elsewhere is not followed, with a warning."""
    real = os.path.realpath(path)
    first = seen.setdefault(real, path)
    if first is path:
        return True
    above = os.path.join(os.path.realpath(os.path.dirname(path)), "").startswith(os.path.join(real, ""))
    print(f"warning: not following {path}: it leads to {real}, " +
          ("a folder above it (a loop)" if above else f"which is read as {first}"), file=sys.stderr)
    return False


def matches_of(pattern: str, own: str) -> tuple:
    """What one --input names: (files, whether they were found in a folder, broken links)."""
    p = os.path.expanduser(pattern)
    matches = [p] if os.path.lexists(p) or not glob.has_magic(p) else sorted(glob.glob(p, recursive=True))
    if not matches:
        raise UserError(f"{p}: no file matches this pattern")
    files, in_folder, broken = [], [], []
    for m in matches:
        if os.path.isdir(m):
            found, links = files_in(m, own)
            if not found and not links:
                raise UserError(f"{m}: the folder holds no file this script reads (it reads {SUPPORTED})")
            files, in_folder, broken = files + found, in_folder + found, broken + links
        elif os.path.islink(m) and not os.path.exists(m) and kind_of(m):
            broken.append(m)
        elif os.path.exists(m):
            files.append(m)
        elif m == DEFAULT_INPUT:
            raise UserError(f"no --input given, and there is no {m}; name your files, folders or "
                            "glob patterns with --input")
        else:
            raise UserError(f"{m}: no such file or folder")
    return files, in_folder, broken


def expand_inputs(patterns, out_dir: str, skip_bad: bool) -> tuple:
    """The input files, in the order given: folders give their files (see files_in); a glob
    pattern (** for any depth) its matches, sorted, each a file or a folder. A broken link or a
    file named twice (one name in one folder, through whatever links) is refused, or with
    --skip-bad-files left out (a file named twice is read once), with a warning. Returns (the
    files, the set of those found in folders, the broken links)."""
    paths, in_folders, broken, own = [], set(), [], os.path.realpath(out_dir)
    for pattern in patterns:
        files, in_folder, links = matches_of(pattern, own)
        paths, broken = paths + files, broken + links
        in_folders.update(in_folder)
    for link in broken:
        left_out(f"{link} is a link to {os.path.realpath(link)}, which is missing (an interrupted download?)",
                 "download it again", skip_bad)
    seen = {}
    for p in paths:
        if os.path.dirname(os.path.realpath(p)) == own and is_output_name(os.path.basename(p)):
            raise UserError(f"{p} is also where this run writes its output; "
                            "choose another --out-dir or input")
        if not kind_of(p) or not os.path.isfile(p):
            raise UserError(f"{p}: not a file this script reads (it reads {SUPPORTED})")
        first = seen.setdefault(os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(p))),
                                             os.path.basename(p)), p)  # (its folder's real path, not its
        # own: the Hugging Face cache links files of the same content to one blob, each a file of the data set)
        if first is not p:
            left_out(f"{p} is the same file as {first}, named before it", "name it once", skip_bad, "read once")
    return list(seen.values()), in_folders, broken


def check_compression(path, comp):
    """Refuses at once a compressed file that is not what its name says (or that this pyarrow
    cannot decompress)."""
    if comp:
        codec, magic = COMPRESSIONS[comp]
        if codec in ("zstd", "lz4") and not arrow()[0].Codec.is_available(codec):
            raise UserError(f"{path}: this pyarrow cannot read {codec}; run: pip install -U pyarrow")
        with open(path, "rb") as f:
            head = f.read(len(magic))
        if head and head != magic:
            raise UserError(f"{path} is not a {codec} file (it does not start as one); "
                            f"rename it or compress it again")


def open_inputs(config: Config) -> list:
    """Every input, checked before any work is done or any file written. Those left out with
    --skip-bad-files (broken links included) have bad set, and no units."""
    paths, in_folders, broken = expand_inputs(config.inputs, config.out_dir, config.skip_bad_files)
    inputs = []
    for path in paths:
        kind, comp = kind_of(path)
        check_compression(path, comp)
        stat = os.stat(path)
        inp = Input(os.path.abspath(path), kind, comp, stat.st_size, stat.st_mtime_ns,
                    most=None if comp else stat.st_size + 1)
        inp = KINDS[kind].check(inp, config, path in in_folders)
        if inp is not None:
            inputs.append(inp)
    return inputs + [bad_input(Input(os.path.abspath(p), *kind_of(p), 0, 0)) for p in broken]


def plan_units(inputs: list, config: Config) -> list:
    return [u for k, inp in enumerate(inputs) if not inp.bad
            for u in KINDS[inp.kind].units(k, inp, config.unit_bytes)]


def where(inputs: list, unit: Unit, place: Optional[Place]) -> str:
    """Where in its input a unit's place is, for messages."""
    inp = inputs[unit.file]
    return f"{inp.path} at {KINDS[inp.kind].position(inp, unit, place)}"
