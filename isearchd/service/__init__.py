"""Running the daemon for the user: start, stop and status from the command line, readiness
checks, and installing it as a systemd or launchd user service.

Owns: spawning a detached ``isearchd`` and waiting until it answers (``control``,
``readiness``), which daemon owns the data home (``pidfile``), rendering the user-service files
(``unitfiles``) and installing them (``install``).

May import: ``client`` (it talks to a running daemon only through the protocol), ``protocol``,
``config``, ``errors``. Never the engine or the daemon's insides: it starts the daemon as a
process.
"""
