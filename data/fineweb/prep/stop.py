"""Stop signals: Ctrl-C everywhere, SIGTERM (kill, Slurm, systemd) where the OS sends it,
Ctrl-Break on Windows. Until the run sets its own handler (run.StopRequest), every write is
atomic, so a stop exits at once and loses nothing. This module imports nothing else: the entry
sets the handlers with it before the rest of the product is imported."""
import os
import signal
import sys

STOP_SIGNALS = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGBREAK] if hasattr(signal, "SIGBREAK") else [])


def stop_while_starting(signum, _frame):
    print("stopped while starting; nothing was lost: run the same command to continue", file=sys.stderr)
    os._exit(128 + signum)


def catch_while_starting(reader: bool):
    """A reader process ignores stop signals: Ctrl-C reaches the whole process group, and the
    parent alone decides."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN if reader else stop_while_starting)
