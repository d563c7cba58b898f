"""The option helpers every sub-command shares (xling_probe.cli.options)."""

from __future__ import annotations

import pytest

from xling_probe.cli.options import parse_pairs
from xling_probe.errors import XlingProbeError


def test_parse_pairs_splits_on_the_first_dash_or_an_explicit_separator():
    assert parse_pairs("en-de, en-zh-Hant") == [("en", "de"), ("en", "zh-Hant")]
    assert parse_pairs("zh-Hant/en,fr:de") == [("zh-Hant", "en"), ("fr", "de")]
    assert parse_pairs(None) is None


def test_parse_pairs_keywords_pass_through_only_when_allowed():
    assert parse_pairs("all") == "all"
    assert parse_pairs("pivot:en") == "pivot:en"
    assert parse_pairs("pivot") == "pivot"  # neutrality's --pairs pivot --pivot en
    with pytest.raises(XlingProbeError, match="cannot read pair 'all'"):
        parse_pairs("all", keywords=False)


@pytest.mark.parametrize("text, message", [("en", "cannot read pair 'en'"), ("en-", "a language is missing"),
                                           (" , ", "--pairs is empty")])
def test_parse_pairs_bad_input(text, message):
    with pytest.raises(XlingProbeError, match=message):
        parse_pairs(text)
