"""A fixed corpus of nasty inputs (issue 33), by kind: the bytes a terminal, a pipe or an editor
might hand `rag` as an argument, a line of standard input, a scrape or a config file. Used by
tests/integration/test_bad_input.py and bench/bad_input.py; the random bytes are seeded.
`python tests/data/nasty/corpus.py DIR` writes them as files, one an input, <kind>-<n>.txt."""

from __future__ import annotations

import random
import sys
from pathlib import Path

rnd = random.Random(33)
CORPUS: dict[str, list[bytes]] = {
    "utf8-plain": [b"what is p-hacking", b"how does softmax work"],
    "latin1": [b"caf\xe9 statistics", b"na\xefve bayes classifier", b"r\xe9sum\xe9 of self-attention"],
    "cp1252": [b"\x93what is p-hacking?\x94", b"softmax \x96 how does it work"],
    "stray-byte": [b"what is \xff softmax", b"\xfe\xff", b"p-hacking \x81\x8d"],
    "invalid-utf8": [b"\xed\xa0\x80 encoded surrogate", b"\xc0\xaf overlong slash", b"caf\xc3"],
    "utf16-bom": [
        "what is softmax\nhow does attention work\n".encode("utf-16"),
        b"\xfe\xff" + "what is p-hacking".encode("utf-16-be"),
        "what is statistical significance".encode("utf-32"),
    ],
    "utf16-no-bom": ["what is softmax".encode("utf-16-le")],
    "utf8-bom": ["\ufeffwhat is softmax".encode()],
    "nul": [b"what\x00 is softmax", b"\x00\x00\x00"],
    "control": [
        b"\x1b[31mwhat is softmax\x1b[0m",
        b"what\x07 is\x08 p-hacking\x7f",
        b"softmax\x0bversus\x0cargmax",
    ],
    "bidi-invisible": [
        "\u202ewhat is softmax\u202c".encode(),
        "\u2066what is\u2069 \u2067p-hacking\u2069".encode(),
        "self\u200battention\u200d and\u2060 ndcg\ufeff".encode(),
    ],
    "empty-after-cleaning": ["\u200b\u200b\u200b".encode(), b"\x1b[0m\x1b[1m"],
    "long": [b"softmax " * 20000, b"a" * 100000, b"why " * 500 + b"p-hacking"],
    "json-looking": [
        b'{"question": "what is softmax"}',
        b'{"line": 1, "error": "injected"}',
        b'["a", 1, null]',
    ],
    "flag-looking": [b"--help", b"-k 5", b"--json --index /nonexistent"],
    "query-syntax": [b'softmax" OR "x', b"NEAR(self attention) AND NOT *", b"%s {0} \\N $(rm -rf /)"],
    "random-bytes": [bytes(rnd.randrange(256) for _ in range(200)) for _ in range(3)],
    "mixed": [
        b"what is softmax\r\ncaf\xe9 statistics\r\n\xff\xfe" + "ndcg".encode("utf-16-le") + b"\r\n",
        b"old mac\rline endings\rwhat is p-hacking",
    ],
    "unicode-odd": [
        "what is \U0001f916 softmax? e\u0301 \u0915\u094d\u0937".encode(),
        "\ufffe\uffff \U0010ffff \U000e0001 tags".encode(),
    ],
}


def inputs() -> list[tuple[str, bytes]]:
    """Every input as (name, bytes), the name <kind>-<n>."""
    return [(f"{kind}-{n}", data) for kind, datas in CORPUS.items() for n, data in enumerate(datas, start=1)]


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, data in inputs():
        (out / f"{name}.txt").write_bytes(data)
