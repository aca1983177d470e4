"""The daemon process, ``isearchd``: it composes the engine, the folder watcher and the socket
server, and runs until it is told to stop.

Owns: the process entry point (arguments, logging, the pid lock, signals), the JSON-lines socket
server (Unix socket or TCP, its security rules), and the order things start and stop in.

May import everything below it: ``watch``, ``engine``, ``store``, ``models``, ``protocol``,
``config``, ``files``, ``errors``. Nothing imports it but ``python -m isearchd``.
"""

from __future__ import annotations

from isearchd.daemon.main import main

__all__ = ["main"]
