"""The leak check the shielding tests share sees a leaked value and ignores chance."""

from __future__ import annotations

import doctest

from tests import leaks


def test_a_secret_inside_a_random_run_is_not_a_leak_and_one_starting_a_word_is() -> None:
    assert doctest.testmod(leaks).failed == 0
    assert leaks.shows("<td>BN2</td>", "BN2") and leaks.shows("BN23AB", "BN2")
    assert not leaks.shows("sealed:x8BN2q", "BN2")
