"""Text for character models: vocabulary, files, the offline corpus, windows."""

import os

import numpy as np
import pytest

from cnnumpy.data import (
    DatasetError,
    Vocabulary,
    char_windows,
    load_text,
    stdlib_corpus,
)


def test_vocabulary_of_masse_is_the_notes_alphabet():
    vocabulary = Vocabulary.of("masse")
    assert vocabulary.symbols == ["a", "e", "m", "s"]  # seed 003's [a, e, m, s]
    ids = vocabulary.encode("masse")
    assert ids.tolist() == [2, 0, 3, 3, 1] and ids.dtype == np.int64
    assert vocabulary.decode(ids) == "masse"
    assert Vocabulary.from_config(vocabulary.get_config()).symbols == vocabulary.symbols


def test_vocabulary_errors_name_what_is_wrong():
    vocabulary = Vocabulary.of("masse")
    with pytest.raises(ValueError, match="'x' is not one of its 4 symbols"):
        vocabulary.encode("max")
    with pytest.raises(ValueError, match=r"ids must be in \[0, 4\), got 0 to 4"):
        vocabulary.decode([0, 4])
    with pytest.raises(ValueError, match="expected distinct symbols, got 3 with 1"):
        Vocabulary(["a", "b", "a"])


def test_load_text_reads_utf8_and_refuses_the_rest(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("élève élu\n", encoding="utf-8")
    vocabulary, ids = load_text(path)
    assert vocabulary.decode(ids) == "élève élu\n"
    path.write_bytes(b"\xff\xfe bad")
    with pytest.raises(DatasetError, match="not UTF-8 text"):
        load_text(path)
    path.write_bytes(b"")
    with pytest.raises(DatasetError, match="the file is empty"):
        load_text(path)
    path.write_text("x" * 100)
    with pytest.raises(DatasetError, match="more than the 10 bytes"):
        load_text(path, max_bytes=10)
    with pytest.raises(DatasetError, match="is a directory, not a regular file"):
        load_text(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_load_text_never_opens_a_fifo(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(DatasetError, match="is a FIFO"):
        load_text(fifo)  # would wait forever for a writer if it were opened


def test_the_stdlib_corpus_is_real_text_available_offline():
    text = stdlib_corpus()
    assert len(text) > 500_000 and "def " in text and "class " in text
    assert stdlib_corpus(max_chars=1000) == text[:1000]


def test_windows_cover_the_text_with_next_character_targets():
    ids = np.arange(103) % 7
    seen = []
    for x, y in char_windows(ids, length=10, batch_size=4, rng=0):
        assert x.shape[1] == 10 and x.shape == y.shape and len(x) <= 4
        np.testing.assert_array_equal(y[:, :-1], x[:, 1:])
        seen.extend(x[:, 0].tolist())
    assert len(seen) == 10  # (103 - 1) // 10 windows, each once
    ordered = [x for x, _ in char_windows(ids, 10, 100, shuffle=False)][0]
    np.testing.assert_array_equal(ordered.reshape(-1), ids[:100])


def test_windows_are_reproducible_from_a_seed():
    ids = np.arange(1000)
    a = [x for x, _ in char_windows(ids, 25, 8, rng=3)]
    b = [x for x, _ in char_windows(ids, 25, 8, rng=3)]
    c = [x for x, _ in char_windows(ids, 25, 8, rng=4)]
    assert all((p == q).all() for p, q in zip(a, b, strict=True))
    assert any((p != q).any() for p, q in zip(a, c, strict=True))


def test_windows_refuse_bad_arguments():
    with pytest.raises(ValueError, match="expected 1-D integer ids"):
        next(char_windows(np.zeros(10), 3, 2))
    with pytest.raises(ValueError, match="length must be an int >= 1, got 0"):
        next(char_windows(np.arange(10), 0, 2))
    with pytest.raises(ValueError, match="a text of 5 ids has no window of 5 \\+ 1"):
        next(char_windows(np.arange(5), 5, 2))
