"""One error type for every expected failure; its message is written for the user."""


class RagError(Exception):
    """An expected failure: bad input, a missing index, a bad setting.

    The message is one line that says what went wrong and, where it helps, what to run next.
    The CLI prints it and exits non-zero; anything else that escapes is a bug.
    """


class IndexMissing(RagError):
    """There is no index at the given folder yet."""


class IndexCorrupt(RagError):
    """An index exists but cannot be used as it is; rebuilding it fixes this."""
