"""``python -m isearchd.cli``: the ``isearch`` command."""

from isearchd.cli.app import main

main()
