"""The sources table's layout, computed without a terminal: which optional columns fit whole and
how wide the title may be."""

from rag.cli.render import fit_columns

OTHERS = [2, 20, 10, 6]  # "#", author (at most 20), published, chunks: 38 + 4 gaps of 2 = 46
EXTRAS = [70, 12, 11]  # url, publication, member-only


def test_a_narrow_terminal_shows_no_optional_column_and_gives_the_title_the_rest():
    assert fit_columns(50, OTHERS, EXTRAS, 80) == ([], 80 - 46 - 2)


def test_a_wide_terminal_shows_every_optional_column_and_the_whole_title():
    assert fit_columns(50, OTHERS, EXTRAS, 260) == ([0, 1, 2], 50)


def test_an_optional_column_that_does_not_fit_leaves_room_for_a_later_narrower_one():
    # the URL would leave the title no room; the publication fits, then member-only does not
    assert fit_columns(50, OTHERS, EXTRAS, 120) == ([1], 50)


def test_the_title_keeps_ten_characters_however_narrow_the_terminal():
    assert fit_columns(50, OTHERS, EXTRAS, 40) == ([], 10)
