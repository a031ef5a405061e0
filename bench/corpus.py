"""A generated FineWeb-like corpus: English-ish documents with Zipf-distributed words,
punctuation, numbers and paragraphs (about 4.3 bytes per GPT-2 token), written in the user's
train_fineweb.txt layout, as FineWeb-schema parquet or as (gzipped) JSON Lines. Deterministic
for a seed."""
import gzip
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq

WORDS = ("the of and to a in is that for it as was with be by on not he this are or his from at "
         "which but have an they you were her she there been one all we their has would when what "
         "if will more no other can its into time only some could new these two may first then do "
         "any like my now over such our man me even most made after also did many before must "
         "through back years where much your way well down should because each just those people "
         "how too little state good very make world still own see men work long get here between "
         "both life being under never day same another know while last might us great old year "
         "off come since against go came right used take three learning students school energy "
         "water health research children community history science data system education "
         "development university important including different example program information "
         "process however environment experience government national understanding").split()
PUNCT = [",", ",", ".", ".", ".", ";", ":", "?", "!", " -", "'s", "(", ")"]
EOT_LAYOUT = "\n\n<|endoftext|><|endoftext|><|endoftext|>\n\n"


def documents(n_bytes, seed=0):
    """Yields documents until about n_bytes of text have been made."""
    rng = random.Random(seed)
    weights = [1 / (i + 1) for i in range(len(WORDS))]
    made = 0
    while made < n_bytes:
        paragraphs = []
        for _ in range(rng.randint(1, 8)):
            words = rng.choices(WORDS, weights, k=rng.randint(20, 180))
            for i in range(0, len(words), 7):
                if rng.random() < 0.3:
                    words[i] += rng.choice(PUNCT)
                if rng.random() < 0.03:
                    words[i] = str(rng.randint(0, 10 ** rng.randint(1, 6)))
            paragraphs.append(" ".join(words).capitalize() + ".")
        doc = "\n\n".join(paragraphs)
        made += len(doc) + len(EOT_LAYOUT)
        yield doc


def write_txt(path, n_bytes, seed=0):
    with open(path, "w", encoding="utf-8") as f:
        for doc in documents(n_bytes, seed):
            f.write(doc + EOT_LAYOUT)


def write_parquet(path, n_bytes, seed=0, rows_per_group=1000):
    writer, rows = None, []

    def flush():
        nonlocal writer, rows
        table = pa.table({"text": pa.array(rows, pa.string())})
        writer = writer or pq.ParquetWriter(path, table.schema, compression="snappy")
        writer.write_table(table)
        rows = []

    for doc in documents(n_bytes, seed):
        rows.append(doc)
        if len(rows) == rows_per_group:
            flush()
    if rows or writer is None:
        flush()
    writer.close()


def write_jsonl(path, n_bytes, seed=0):
    """One {"text": ...} object per line; gzipped when path ends in .gz (as datatrove writes)."""
    with (gzip.open(path, "wt", encoding="utf-8") if str(path).endswith(".gz") else
          open(path, "w", encoding="utf-8")) as f:
        for doc in documents(n_bytes, seed):
            f.write(json.dumps({"text": doc}) + "\n")
