"""Databases, behind one interface (``interface.ImageDatabase`` in a ``interface.Store``) with two
implementations: the embedded store (the default: per database a crash-safe SQLite catalog, the
source of truth, plus an hnswlib vector index; ``database.py``, ``catalog.py``, ``vectors.py``)
and Qdrant (a collection per database, shared by many daemons; ``qdrant*.py``). ``open_store``
picks one from the daemon's settings. Only this package imports qdrant_client.
"""

from isearchd.store.database import Database, SavePolicy
from isearchd.store.embedded import EmbeddedStore
from isearchd.store.factory import open_store
from isearchd.store.interface import ImageDatabase, Store
from isearchd.store.metadata import Filters, PhotoInfo
from isearchd.store.names import list_databases, validate_db_name, watched_folders
from isearchd.store.records import Detail, ImageRecord, Move, PhotoFile, SearchHit, WatchedFolder

__all__ = [
    "Database",
    "Detail",
    "EmbeddedStore",
    "Filters",
    "ImageDatabase",
    "ImageRecord",
    "Move",
    "PhotoFile",
    "PhotoInfo",
    "SavePolicy",
    "SearchHit",
    "Store",
    "WatchedFolder",
    "list_databases",
    "open_store",
    "validate_db_name",
    "watched_folders",
]
