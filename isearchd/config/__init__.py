"""Configuration as typed data: settings and where things live (``settings``: data home, socket,
caches; one resolution for the daemon, the CLI and the Client) and the config file
(``file``: ``isearch.toml`` and precedence; ``schema``: every setting and the typed ``Config``;
``document``: the parsed file with line-accurate errors; ``checks``: each value's check).

May import: ``errors`` only.
"""
