"""Watched folders: keep a database in sync with folders on disk (watchdog).

Owns: the ``Watcher`` (every watched folder of the daemon), one folder's watch (observer,
reconcile, event handling), comparing a folder with the catalog (``reconcile``), waiting for
files to settle (``debounce``) and which paths a folder wants (``pathfilter``).

May import: ``engine`` (whose job queue it feeds), ``store``, ``config``, ``files``, ``errors``
and ``watchdog``. Never the protocol, the server or the CLI.
"""
