"""The product's code, beside its entry data/fineweb/prepare.py, in the order data flows:

    config      the important numbers (sizes, defaults), Config, UserError
    stop        stop signals while starting (the entry sets them first)
    cutting     documents: where text may be cut (find_cut, Cutter, Segment, Place)
    streams     inputs: a file's bytes, decompressed as they are read
    kinds       input kinds (txt, JSON Lines, parquet): check, units, reader, position
    inputs      the inputs of a run: which files, each checked, and their units of work
    readers     reading units into chunks, in reader processes or here
    tokenizers  tiktoken and Hugging Face tokenizers: encoding a chunk exactly
    schedule    chunks to encoding threads and back, in order, in a bounded window
    splits      which pieces go to train and val
    formats     files on disk: durable writes, the lock, a writer per output format (FORMATS)
    folder      the output folder: checkpoint, summary, resume
    run         the run: one loop from encoded chunks to the output or a share's parts
    verify      --verify
    cli         the command line, main

A reader process imports only config, stop, cutting, streams, kinds and readers: no numpy,
tiktoken or tqdm (tests/test_platforms.py checks it).
"""
