"""Runs data/fineweb/prepare.py, the file users copy into nanoGPT, from the repository root.

    python prepare.py --input train_fineweb.txt     # writes data/fineweb/train.bin, val.bin
"""
import os
import runpy

runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "fineweb", "prepare.py"),
               run_name="__main__")
