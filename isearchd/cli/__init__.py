"""The ``isearch`` command line: a typer app and its commands, and how their output looks.

Owns: argument parsing, the default ``search`` command, every command of the original README
(``search``, ``add``, ``db``, ``cmp``, ``service``), ``watch``/``unwatch``, ``model`` and
``config``; turning errors into one red line and an exit status. It talks to the daemon only
through ``isearchd.client`` (and starts or stops it through ``isearchd.service``).

May import: ``service``, ``client``, ``protocol``, ``config``, ``files``, ``models`` (weights
for ``model pull``/``import``), ``reports``, ``errors``. Never the engine, the store or the
daemon's insides.

Modules: ``app`` (the root app, default-command routing, the error edge, ``main``), ``search``
(search, cmp), ``library`` (add, db), ``model``, ``service``, ``watch``, ``config``; ``options``
(the shared -d/-B/-v and the Client they make) and ``output`` (exit statuses, the red error
line, progress).
"""

from __future__ import annotations

from isearchd.cli.app import app, main

__all__ = ["app", "main"]
