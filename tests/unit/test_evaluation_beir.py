import pytest

from rag.errors import RagError
from rag.evaluation.beir import load_beir


def test_beir_loader_keeps_test_queries_and_graded_qrels(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": "d1", "title": "T1", "text": "alpha"}\n{"_id": "d2", "title": "", "text": "beta"}\n'
    )
    (tmp_path / "queries.jsonl").write_text(
        '{"_id": "1", "text": "alpha?"}\n{"_id": "2", "text": "train only"}\n'
    )
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t2\n1\td2\t1\n")
    data = load_beir(tmp_path)
    assert data.corpus == {"d1": ("T1", "alpha"), "d2": ("", "beta")}
    assert data.queries == {"1": "alpha?"}
    assert data.qrels == {"1": {"d1": 2, "d2": 1}}
    with pytest.raises(RagError, match="missing"):
        load_beir(tmp_path / "nope")
