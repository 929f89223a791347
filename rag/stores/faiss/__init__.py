"""FAISS + SQLite: the default store (see store.py for the layout of an index folder)."""

from rag.stores.faiss.store import FaissStore

__all__ = ["FaissStore"]
