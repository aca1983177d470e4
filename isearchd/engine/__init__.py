"""The engine: the resident model's searches, adds and comparisons, without any transport.

Owns: ``Engine`` (databases opened with the model, text-query cache, search, compare), the
indexing pipeline (stat, read, hash, decode, embed, commit; ``indexer``), image decoding
(``images``), and the one job queue every write goes through (``jobqueue``).

May import: ``store``, ``models``, ``config``, ``files``, ``reports``, ``errors``. Never the
wire protocol, the socket server, the CLI or the folder watcher (the watcher sits above it and
feeds its job queue).
"""
