"""Tag a catalogue (millions of files) on Ray Data: the folder run, spread over a cluster.

The data flow, one module each::

    inputs.py     a folder, a text file of paths or a Parquet/CSV table  →  files to tag
                  (+ the files skipped or not audio, by name, before anything is opened)
    table.py      the output folder: resume (rows already there, same model), Parquet parts
                  written atomically, the skipped table, the CSV export
    pipeline.py   Ray Data: decode + window as CPU tasks → the model in an actor pool
                  (one model load per actor, windows of many files per forward pass)
    run.py        the run: the three above, progress, the closing summary

Only ``pipeline.py`` imports Ray, and only inside its functions: nothing else in the project
loads it (an import contract in pyproject.toml). The rows are those of
``audiotagger tag FOLDER --out tags.csv``: the same decoding (``inference.streaming``), the same
batching and averaging (``Tagger.predict_decoded``) and the same row format
(``inference.formats``).
"""
