"""The number words of examples/translate.py, French and English, 0 to 9,999, and
the split of the numbers into training and held-out ones.

French follows the traditional spelling (before the 1990 reform): hyphens join the
words below 100 except around "et"; "et" only in 21, 31, 41, 51, 61 and 71; vingt and
cent take an s when multiplied and nothing follows; mille never does:

    21 vingt et un       71 soixante et onze     80 quatre-vingts    81 quatre-vingt-un
    99 quatre-vingt-dix-neuf    200 deux cents   201 deux cent un    1000 mille
    1080 mille quatre-vingts    2200 deux mille deux cents

(the 1990 rules would hyphenate everything: "deux-mille-deux-cent-vingt-et-un").
English is American: "one hundred one", "two thousand two hundred forty-two", with
no "and" after hundred (British English would say "one hundred and one").

Word-level tokens: each word is a token and so is each hyphen, so that
"quatre-vingt-dix-sept" is ``quatre - vingt - dix - sept`` and ``tokens`` and
``words`` undo each other exactly.
"""

from __future__ import annotations

import numpy as np

FR_UNITS = (
    "zéro un deux trois quatre cinq six sept huit neuf dix onze douze treize "
    "quatorze quinze seize"
).split()
FR_TENS = {2: "vingt", 3: "trente", 4: "quarante", 5: "cinquante", 6: "soixante"}
EN_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
EN_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
LARGEST = 9999


def _check(owner: str, n: int) -> None:
    if not 0 <= n <= LARGEST:
        raise ValueError(f"{owner}: expected a number in 0-{LARGEST}, got {n}")


def _french_below_100(n: int) -> str:
    """0-99: "dix-sept", "vingt et un", "soixante-douze", "quatre-vingt-onze"."""
    if n <= 16:
        return FR_UNITS[n]
    if n < 20:
        return "dix-" + FR_UNITS[n - 10]  # dix-sept, dix-huit, dix-neuf
    tens, unit = divmod(n, 10)
    if tens == 7:  # 60 + 10..19: soixante-dix, soixante et onze, soixante-douze
        if unit == 1:
            return "soixante et onze"
        return "soixante-" + _french_below_100(10 + unit)
    if tens == 8:  # quatre-vingts takes its s only when nothing follows; no "et un"
        return "quatre-vingts" if unit == 0 else "quatre-vingt-" + FR_UNITS[unit]
    if tens == 9:  # 80 + 10..19: quatre-vingt-dix, quatre-vingt-onze (no "et")
        return "quatre-vingt-" + _french_below_100(10 + unit)
    if unit == 0:
        return FR_TENS[tens]
    if unit == 1:
        return FR_TENS[tens] + " et un"  # vingt et un ... soixante et un
    return FR_TENS[tens] + "-" + FR_UNITS[unit]


def _french_below_1000(n: int) -> str:
    """0-999: "cent", "cent un", "deux cents", "deux cent un", "cent quatre-vingts"."""
    hundreds, rest = divmod(n, 100)
    if hundreds == 0:
        return _french_below_100(rest)
    head = "cent" if hundreds == 1 else FR_UNITS[hundreds] + " cent"
    if rest == 0:
        return head + ("s" if hundreds > 1 else "")  # deux cents, but cent
    return head + " " + _french_below_100(rest)


def french(n: int) -> str:
    """The French words of ``n`` in 0-9999 (traditional spelling, see above)."""
    _check("french", n)
    thousands, rest = divmod(n, 1000)
    if thousands == 0:
        return _french_below_1000(rest)
    head = "mille" if thousands == 1 else FR_UNITS[thousands] + " mille"  # no "un"
    return head if rest == 0 else head + " " + _french_below_1000(rest)


def _english_below_1000(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    if rest < 20:
        tail = EN_UNITS[rest]
    else:
        tens, unit = divmod(rest, 10)
        tail = EN_TENS[tens] + ("-" + EN_UNITS[unit] if unit else "")
    if hundreds == 0:
        return tail
    head = EN_UNITS[hundreds] + " hundred"
    return head if rest == 0 else head + " " + tail


def english(n: int) -> str:
    """The American English words of ``n`` in 0-9999: "one hundred forty-two"."""
    _check("english", n)
    thousands, rest = divmod(n, 1000)
    if thousands == 0:
        return _english_below_1000(rest)
    head = EN_UNITS[thousands] + " thousand"
    return head if rest == 0 else head + " " + _english_below_1000(rest)


def tokens(text: str) -> list[str]:
    """Words and hyphens: "deux cent quatre-vingts" -> deux cent quatre - vingts."""
    return text.replace("-", " - ").split()


def words(token_list) -> str:
    """The inverse of :func:`tokens`: ``["twenty", "-", "one"]`` -> "twenty-one"."""
    return " ".join(token_list).replace(" - ", "-")


def split_numbers(
    seed: int, n_train: int, n_held_out: int = 1000
) -> tuple[np.ndarray, np.ndarray]:
    """0-9999 shuffled with ``seed``: (``n_train`` training numbers, ``n_held_out``
    others, which training never sees)."""
    numbers = np.random.default_rng(seed).permutation(LARGEST + 1)
    return numbers[n_held_out : n_held_out + n_train], numbers[:n_held_out]
