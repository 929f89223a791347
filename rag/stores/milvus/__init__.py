"""Milvus (server, cluster or Milvus Lite): the scale-out store (see store.py)."""

from rag.stores.milvus.store import MilvusStore

__all__ = ["MilvusStore"]
