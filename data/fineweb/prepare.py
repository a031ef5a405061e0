"""
Turns local pretraining text into the token files GPT trainers read: nanoGPT's train.bin and
val.bin, llm.c / modded-nanogpt .bin shards (--format llmc), build-nanogpt .npy shards (--format npy).

    python data/fineweb/prepare.py --input data/fineweb/sample --out-dir data/fineweb_sample
    python data/fineweb/prepare.py --input train_fineweb.txt
    python data/fineweb/prepare.py --input fineweb/sample/10BT --format llmc --out-dir fineweb10B

This file is the entry: it sets the stop handlers first, then runs the package beside it,
prep/, whose modules follow the data (see prep/__init__.py). README.md says how to use it.
"""
import sys

if sys.version_info < (3, 9):
    sys.exit(f"error: this script needs Python 3.9 or newer, and this is Python "
             f"{sys.version.split()[0]}; run it with a newer python")

try:  # from the next line on, a stop signal gives one line (prep/stop.py), never a traceback
    import os
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # (prep/, whoever runs this file)
    from prep.stop import STOP_SIGNALS, catch_while_starting
    catch_while_starting(reader=__name__ == "__mp_main__")  # (a spawned reader process runs this file too)
    if __name__ == "__main__":
        from prep.cli import main
except KeyboardInterrupt:  # (a Ctrl-C before the handler was set)
    sys.exit("stopped while starting; nothing was lost: run the same command to continue")
except ImportError as e:
    if (e.name or "").split(".")[0] == "prep":
        sys.exit("error: the folder prep/ that belongs beside this prepare.py is missing: copy the whole "
                 "folder data/fineweb (prepare.py, prep/, gpt2.tiktoken), not prepare.py alone")
    sys.exit(f"error: {e.name or e} is not installed or does not load; run: pip install -U -r requirements.txt")

if __name__ == "__main__":
    code = main()
    import signal
    for sig in STOP_SIGNALS:  # the work is over: a stop signal now changes nothing (at exit, Python's
        signal.signal(sig, signal.SIG_IGN)  # default would end the process without a word)
    sys.exit(code)
