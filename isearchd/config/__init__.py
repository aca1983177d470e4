"""Configuration as typed data: settings and where things live (``settings``: data home, socket,
caches; one resolution for the daemon, the CLI and the Client) and the config file
(``file``: ``isearch.toml``, precedence, line-accurate errors).

May import: ``errors`` only.
"""
