"""rag: local, offline question answering over scraped articles."""

__version__ = "0.1.0"
