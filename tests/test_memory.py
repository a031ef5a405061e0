"""Memory bounded whatever the input's shape: the README's bound for the defaults (peak RSS of the
whole run, readers included, as bench/memory.py measures it) on tiny documents, huge parquet rows
and row groups, dictionary-encoded rows, long lines and long whitespace runs."""
import json
import os

import pytest

import corpus
import memory
from helpers import EOT, GPT2, flat, read_bin, reference_docs, split_docs, summary_of, write_parquet
from prep.cli import make_config
from prep.config import CHUNK_CHARS
from prep.inputs import open_inputs, plan_units
from prep.readers import read_unit

MEMORY_MIB = 256  # the README's bound for the defaults, whatever the input


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny.jsonl", "tiny.txt"])
def test_many_tiny_documents_in_bounded_memory(name, tmp_path):
    """8 MB of one-character documents (560,000 of them): a chunk is bounded in documents as well as
    in characters, so their objects do not pile up (before: about 290 MiB)."""
    n = 8_000_000 // 15
    line = json.dumps({"text": "a"}) + "\n" if name.endswith(".jsonl") else "a<|endoftext|>"
    (tmp_path / name).write_text(line * n)
    out = tmp_path / "o"
    peak, code, err = memory.peak_rss_mib(["--input", tmp_path / name, "--out-dir", out])
    assert code == 0 and "Traceback" not in err, err
    assert peak < MEMORY_MIB, f"peak {peak:.0f} MiB for {n:,} tiny documents"
    tokens = read_bin(out / "train.bin") + read_bin(out / "val.bin")
    assert split_docs(tokens) == reference_docs(["a"]) * n


@pytest.mark.slow
def test_dictionary_encoded_parquet_rows_that_repeat_in_bounded_memory(tmp_path):
    """3,000 rows of one 100 KB document, stored once (a 60 KB file whose footer counts 100 KB of
    text for 300 MB): batches are sized by what the rows hold once decoded. --max-tokens stops the
    run early: the memory was taken by the first batch (before: the whole row group decoded, ~590 MiB)."""
    doc = " ".join(corpus.documents(200_000, seed=7))[:100_000]
    write_parquet(tmp_path / "d.parquet", [doc] * 3000, row_group_size=3000)  # (pyarrow's default encoding)
    assert os.path.getsize(tmp_path / "d.parquet") < 200_000
    out = tmp_path / "o"
    peak, code, err = memory.peak_rss_mib(["--input", tmp_path / "d.parquet", "--out-dir", out,
                                           "--val-fraction", 0, "--max-tokens", 100_000])
    assert code == 0 and "Traceback" not in err, err
    assert peak < MEMORY_MIB, f"peak {peak:.0f} MiB"
    docs = split_docs(read_bin(out / "train.bin"))
    assert docs == reference_docs([doc]) * len(docs) and 100_000 <= sum(map(len, docs)) < 150_000


@pytest.mark.slow
def test_one_huge_parquet_row_costs_about_twice_its_size(tmp_path):
    """One row of 8 MB, then of 40 MB: each MB more of the row costs under 4 MiB more at the peak
    (here about 2.6: the row and its pieces, and pyarrow's copies while it decodes; before: 6)."""
    text = " ".join(corpus.documents(2_000_000, seed=5))  # (distinct beyond snappy's reach: a file of
    peaks = []                                           # megabytes, read by a reader process)
    for mb in (8, 40):
        row = (text * (mb // 2 + 1))[:mb << 20]
        write_parquet(tmp_path / f"{mb}.parquet", [row])
        out = tmp_path / f"o{mb}"
        peak, code, err = memory.peak_rss_mib(["--input", tmp_path / f"{mb}.parquet", "--out-dir", out,
                                               "--val-fraction", 0])
        assert code == 0 and "Traceback" not in err, err
        assert split_docs(read_bin(out / "train.bin")) == reference_docs([row])
        peaks.append(peak)
    assert (peaks[1] - peaks[0]) / 32 < 4, peaks


@pytest.mark.slow
def test_a_50mb_line_of_one_character_is_forced_into_pieces_in_bounded_memory(tmp_path):
    """A 50 MB line of one character is cut by force into pieces, in bounded memory, and decodes back."""
    path = tmp_path / "line.txt"
    with open(path, "w") as f:
        for _ in range(50):
            f.write("x" * (1 << 20))
    rss, rc, err = memory.peak_rss_mib(["--input", path, "--out-dir", tmp_path / "o", "--val-fraction", 0])
    assert rc == 0, err
    assert "forced cuts" in err and "Traceback" not in err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["forced_cuts"] >= 20
    assert rss < 400, f"peak RSS {rss:.0f} MiB for a 50 MB line"
    tokens = read_bin(tmp_path / "o" / "train.bin")
    assert tokens[-1] == EOT and EOT not in tokens[:-1]
    assert GPT2.decode(tokens[:-1]) == "x" * (50 << 20)


def peak_run(*args):
    peak, code, err = memory.peak_rss_mib([*map(str, args)])
    assert code == 0, err
    assert "Traceback" not in err
    return peak


@pytest.mark.slow
def test_parquet_memory_with_huge_rows_and_one_huge_row_group(tmp_path):
    """Memory stays under the bound with 500 KB parquet rows and with one 150 MB row group."""
    pool = list(corpus.documents(400_000, seed=9))
    paragraph = " ".join(pool)[:10_000]
    # (a) 150 rows of ~500 KB, in row groups of 50 rows (~25 MB each). A data page is decoded
    # whole, and pyarrow sizes pages 1,024 rows at a time by default (here: 25 MB pages); memory
    # is bounded for pages of normal size (README: a page is the unit parquet can be read by)
    rows = [" ".join(f"{paragraph} ({i}.{j})" for j in range(50)) for i in range(150)]
    write_parquet(tmp_path / "big_rows.parquet", rows, row_group_size=50, write_batch_size=2)
    # (b) ~150 MB of ordinary rows in one row group
    rows = [f"{pool[i % len(pool)]} ({i})" for i in range(80_000)]
    assert sum(map(len, rows)) > 140e6
    write_parquet(tmp_path / "one_group.parquet", rows, row_group_size=len(rows))
    del rows
    peaks = {}
    for name, n_rows in (("big_rows", 150), ("one_group", 80_000)):
        out = tmp_path / f"o_{name}"
        peaks[name] = peak_run("--input", tmp_path / f"{name}.parquet", "--out-dir", out, "--val-fraction", 0)
        assert summary_of(out)["train"]["documents"] == n_rows
    assert max(peaks.values()) < MEMORY_MIB, peaks


@pytest.mark.slow
def test_a_long_whitespace_run_inside_a_txt_document(tmp_path):
    """A 16 MiB whitespace run inside a txt document is cut by force within the bound plus that text."""
    with open(tmp_path / "ws.txt", "w", encoding="utf-8") as f:
        f.write("hello world" + " " * (16 << 20) + " end" + "\n<|endoftext|>\n" + "second document")
    out = tmp_path / "o"
    peak, code, err = memory.peak_rss_mib(["--input", tmp_path / "ws.txt", "--out-dir", out, "--val-fraction", 0])
    assert code == 0 and "Traceback" not in err, err
    # the run is held until what follows shows whether it ends the document: the README's bound
    # is the defaults' plus one document's text (16 MiB here)
    assert peak < MEMORY_MIB + 16, peak
    assert summary_of(out)["forced_cuts"] > 0
    assert "forced cut" in err, err
    second = flat(reference_docs(["second document"]))
    assert read_bin(out / "train.bin")[-len(second):] == second


@pytest.mark.unit
def test_dictionary_encoded_parquet_rows_come_in_small_batches(tmp_path):
    """4,000 copies of one 5,000-character row: the footer says 5 KB, the text is 19 MiB; no chunk
    of the reader holds more than about a chunk's worth."""
    write_parquet(tmp_path / "d.parquet", ["w" * 4999 + " "] * 4000, row_group_size=4000)
    config = make_config(["--input", str(tmp_path / "d.parquet"), "--out-dir", str(tmp_path / "o")])
    inputs = open_inputs(config)
    sizes = [sum(len(seg.text) for seg in chunk.segments)
             for chunk in read_unit(inputs, plan_units(inputs, config)[0], None, config)]
    assert sum(sizes) == 4000 * 5000 and max(sizes) <= 2 * CHUNK_CHARS, max(sizes)
