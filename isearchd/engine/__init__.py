"""The engine: the resident model's searches, adds and comparisons, without any transport.

Owns: ``Engine`` (databases opened with the model, text-query cache, search, compare), the
indexing pipeline (stat, read, hash, decode, embed, commit; ``indexer``), the background analyses
(``analysis``, ``passes``), the query gate and priority lock (``gate``), and the one job queue
every write goes through (``jobqueue``).

Adding an analysis of every photo (people, words in pictures, video frames) touches neither the
indexer's loop nor the engine: write a class with the ``analysis.Analysis`` shape (``name``,
``version``, ``priority``, ``side``, ``chunk``, ``tables``, ``reads_new``, ``decodes_files``;
``read(photos)`` -> an outcome or ``Failed(reason)`` per photo; ``save(db, outcomes)``), add its
tables with a store migration (rows deleted with their image by trigger), and pass it to the
engine (``Engine(..., analyses=[...])``, as the daemon composes it). It then runs on the analyses'
background thread after the image tower, yields to every search and to indexing, gets the
indexer's decoded picture when ``reads_new`` (no second decode), catches up photos stored before
it existed or read by an older ``version``, records per-photo failures, and reports its progress
in ``status`` (``passes`` holds the two that exist today: photo metadata and looks).

May import: ``store``, ``models``, ``config``, ``files``, ``reports``, ``errors``. Never the
wire protocol, the socket server, the CLI or the folder watcher (the watcher sits above it and
feeds its job queue).
"""
