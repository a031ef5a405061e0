"""The output folder: the format's writer, the checkpoint and the summary."""
from __future__ import annotations

import os
import signal
from dataclasses import asdict, dataclass, field
from typing import Optional

from .config import CHECKPOINT, CRASH_ENV, SHARD_TOKENS, SUMMARY, UserError
from .cutting import Counts, Place, place_of
from .splits import SplitState
from .formats import FORMATS, is_output_name, read_json, write_json


@dataclass
class Checkpoint:
    """A run's state after the last chunk written; prepare.checkpoint.json is its asdict."""
    fingerprint: dict           # what the bytes depend on (see fingerprints)
    next_unit: int = 0          # the unit being read
    unit_state: Optional[Place] = None   # where in it (None: at its start)
    split: SplitState = field(default_factory=SplitState)
    files: Optional[dict] = None  # the writer's file state (None: no file written yet)
    counts: Counts = field(default_factory=Counts)
    seconds: float = 0.0        # of work, over all runs
    done: bool = False          # every unit is read: only the files are left to finish
    budget: Optional[dict] = None  # where --max-tokens stopped the run

    @classmethod
    def load(cls, saved: dict, path: str) -> Checkpoint:
        try:
            return cls(**dict(saved, unit_state=saved["unit_state"] and place_of(saved["unit_state"]),
                              split=SplitState(**saved["split"]), counts=Counts(**saved["counts"])))
        except (KeyError, TypeError):
            raise UserError(f"{path} was written by another version of this script; run the command "
                            "with --restart to start over") from None


class Output:
    """The output folder of a run: the format's writer, the checkpoint and the summary. A
    checkpoint records the state after the last chunk written: the writer's files are fsynced
    before it is written, so on resume they are cut back to its lengths and anything written
    after it is dropped. Finished files appear only when complete."""

    def __init__(self, out_dir, fingerprint, writer):
        self.dir, self.fingerprint, self.writer = out_dir, fingerprint, writer
        self.checkpoints, self.kill_at = 0, int(os.environ.get(CRASH_ENV, 0))

    def path(self, name):
        return os.path.join(self.dir, name)

    def outputs(self):
        """The files of any earlier run here (whatever its format)."""
        return [name for name in os.listdir(self.dir) if is_output_name(name)]

    def start(self, restart: bool) -> Optional[Checkpoint]:
        """The state to continue from, or None when this output is already finished."""
        if restart:
            self.clear()
        if os.path.exists(self.path(CHECKPOINT)):
            state = read_json(self.path(CHECKPOINT))
            if state.get("files") is None:  # no token recorded yet: nothing to keep, whatever the options
                return self.start(True)
            if not same_run(state.get("fingerprint"), self.fingerprint):
                raise UserError(f"{self.dir} holds an unfinished run with other inputs or options "
                                f"({changed(state.get('fingerprint'), self.fingerprint)}); to finish it, "
                                f"{to_finish(state.get('fingerprint'), self.fingerprint)}, or add --restart to start over")
            return Checkpoint.load(state, self.path(CHECKPOINT))
        if os.path.exists(self.path(SUMMARY)):
            summary = read_json(self.path(SUMMARY))
            if same_run(summary.get("fingerprint"), self.fingerprint) and self.finished_files_match(summary):
                return None
            raise UserError(f"{self.dir} already holds output from a different run "
                            f"({changed(summary.get('fingerprint'), self.fingerprint) or 'files missing'}); "
                            "add --restart to replace it, or choose another --out-dir")
        if self.outputs():
            raise UserError(f"{self.dir} already holds token files ({', '.join(sorted(self.outputs())[:3])}); "
                            "add --restart to replace them, or choose another --out-dir")
        state = Checkpoint(self.fingerprint)  # (its files are made after it is written)
        write_json(self.path(CHECKPOINT), asdict(state))
        return state

    def clear(self):
        for name in self.outputs():
            os.remove(self.path(name))

    def finished_files_match(self, summary):
        return all(os.path.exists(self.path(f["file"])) for f in summary["files"])

    def checkpoint(self, state: Checkpoint):
        state.files = self.writer.state()
        self.checkpoints += 1
        if self.checkpoints == self.kill_at:
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))  # (Windows: TerminateProcess)
        write_json(self.path(CHECKPOINT), asdict(state))
        self.writer.settle()

    def finish(self, summary_of):
        """Completes the files and writes the summary; safe to repeat after a kill."""
        summary = summary_of(self.writer.finish())
        write_json(self.path(SUMMARY), summary)
        os.remove(self.path(CHECKPOINT))
        return summary


# fingerprint keys that releases before these did not write (a --tokenizer file's --doc-token and
# --tokenizer-pattern): a saved fingerprint without them is taken to have this run's, so that a
# run those releases left unfinished still resumes (what it was given for them is not recorded)
LATER_KEYS = ("doc_token", "tokenizer_pattern")


def completed(old, new):
    """A saved fingerprint (a checkpoint's, a summary's or a part's), with this run's values for
    the LATER_KEYS it does not have."""
    return {**{k: new[k] for k in LATER_KEYS if k in new}, **old} if isinstance(old, dict) else old


def same_run(old, new) -> bool:
    """Whether a saved fingerprint is this run's."""
    return completed(old, new) == new


def changed(old, new) -> str:
    """Names what differs between two fingerprints, for the refusal message: each option with its
    value then and now (not one that only --format's default changed), a tokenizer file whose
    content changed, the input files."""
    if not isinstance(old, dict):
        return "unknown"
    old = completed(old, new)
    option = dict(val_rule="the val split", piece_chars="PIECE_CHARS", unit_bytes="UNIT_BYTES",
                  encoding=tokenizer_option(old.get("encoding"), new["encoding"]))
    said = dict(ignored_settings="the tokenizer file's padding, truncation or BPE dropout, which an earlier "
                                 "release ran and this one ignores")
    diffs = [said.get(k) or tokenizer_file_change(old.get(k), new[k]) or
             f"{option.get(k, '--' + k.replace('_', '-'))} was {shown(k, old.get(k))}, now {shown(k, new[k])}"
             for k in new if k != "inputs" and old.get(k) != new[k] and not format_default(k, old, new)]
    if old.get("inputs") != new["inputs"]:
        diffs += changed_inputs(old.get("inputs", []), new["inputs"])
    return "; ".join(diffs)


def shown(key, value) -> str:
    """A fingerprint's value as the options give it."""
    if key == "val_rule" and value:
        return f"--val-{value[0]} {value[1]:,}" if value[0] == "tokens" else f"--val-{value[0]} {value[1]:g}"
    return "none" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def format_default(key, old, new) -> bool:
    """Whether a key differs only because --format did: each side at its format's default."""
    fmts = [FORMATS.get(fp.get("format")) for fp in (old, new)]
    if fmts[0] == fmts[1] or None in fmts or key not in ("val_rule", "prefix", "shard_tokens"):
        return False
    default = lambda fmt: dict(val_rule=list(fmt.val_rule), prefix=fmt.prefix,
                               shard_tokens=SHARD_TOKENS if fmt.prefix else None)[key]
    return [old.get(key), new.get(key)] == [default(fmt) for fmt in fmts]


def tokenizer_option(old, new) -> str:
    """The option that changed a fingerprint's tokenizer name: a file's (see load_tokenizer), a
    built-in encoding's, or its --doc-token's (see builtin_tokenizer)."""
    if " (sha256 " in f"{old}{new}":
        return "--tokenizer"
    return "--encoding" if str(old).split(" (")[0] != new.split(" (")[0] else "--doc-token"


def tokenizer_file_change(old, new) -> Optional[str]:
    """A tokenizer file's content changed (its name holds its sha256, see load_tokenizer): said
    so; None for any other change."""
    (path, sha, was), (new_path, _, now) = str(old).partition(" (sha256 "), str(new).partition(" (sha256 ")
    if not sha or path != new_path:
        return None
    return f"the tokenizer file {path} changed since the run began (its sha256 was {was[:-1]}, now {now[:-1]})"


def to_finish(old, new) -> str:
    """What finishes a run that these inputs or options were refused: undoing what changed."""
    if not isinstance(old, dict):
        return "run the command it began with"
    old = completed(old, new)
    before = {path: rest for path, *rest in old.get("inputs", [])}
    files = [tokenizer_file_change(old.get("encoding"), new["encoding"])] + \
        [p for p, *rest in new["inputs"] if before.get(p, rest) != rest]
    options = [k for k in new if k not in ("inputs", "ignored_settings") and old.get(k) != new[k]
               and not format_default(k, old, new) and not tokenizer_file_change(old.get(k), new[k])]
    steps = [what for what, needed in (
        ("use the release it began with", old.get("ignored_settings") != new.get("ignored_settings")),
        ("restore the changed files (their size and modification time are compared)", any(files)),
        ("give it the input files it began with (in that order)", list(before) != [p for p, *_ in new["inputs"]]),
        ("give it the options it began with", options)) if needed] or ["run the command it began with"]
    return ", ".join(steps[:-1]) + " and " * (len(steps) > 1) + steps[-1]


def changed_inputs(old: list, new: list) -> list:
    """Which input files changed, went or came between two fingerprints' [path, size, mtime]s."""
    before = {path: rest for path, *rest in old}
    now = {path: rest for path, *rest in new}
    files = [p for p in now if before.get(p, now[p]) != now[p]]
    gone = [p for p in before if p not in now]
    added = [p for p in now if p not in before]
    diffs = [f"{what}: {', '.join(ps[:3])}{' ...' if len(ps) > 3 else ''}" for what, ps in
             (("input files changed since the run began", files), ("input files no longer given", gone),
              ("new input files", added)) if ps]
    return diffs or ["the order of the input files"]
