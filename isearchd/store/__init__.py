"""Databases: a crash-safe SQLite catalog (the source of truth) plus an hnswlib vector index.

``Database.open(home, name, model_key=..., dim=...)`` opens or creates ``<home>/<name>/``; see
``database.py`` for the guarantees, ``catalog.py`` for the schema, ``vectors.py`` for the index.
"""

from isearchd.store.database import Database, ImageRecord, SavePolicy, SearchHit
from isearchd.store.metadata import Filters, PhotoInfo
from isearchd.store.names import list_databases, validate_db_name, watched_folders

__all__ = [
    "Database",
    "Filters",
    "ImageRecord",
    "PhotoInfo",
    "SavePolicy",
    "SearchHit",
    "list_databases",
    "validate_db_name",
    "watched_folders",
]
