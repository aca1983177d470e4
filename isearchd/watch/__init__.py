"""Watched folders: keep a database in sync with folders on disk (watchdog).

Owns: the ``Watcher`` (every watched folder of the daemon), one folder (``folder``: its parts
and its thread's lifecycle), the folder's thread (``sync``: reconcile, events, jobs), its handler
on the shared observers (``observe``), what it reports (``status``), turning events into
operations (``events``), applying a batch to a database (``apply``), what a folder needs from the
daemon (``host``), the tuning and the inotify or polling decision (``options``), comparing a
folder with the catalog (``reconcile``), waiting for files to settle (``debounce``) and which
paths a folder wants (``pathfilter``).

May import: ``engine`` (whose job queue it feeds), ``store``, ``config``, ``files``, ``reports``,
``errors`` and ``watchdog``. Never the protocol, the server or the CLI.
"""
