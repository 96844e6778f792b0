"""Topic-leakage masking of training text (slimbert.train.masking)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slimbert.errors import ConfigError
from slimbert.train.masking import KINDS, check_kinds, mask_text


@pytest.mark.parametrize(
    ("kinds", "text", "expected"),
    [
        (("mentions",), "@united thanks for nothing", "@user thanks for nothing"),
        (("hashtags",), "Brady again #DeflateGate #fail", "Brady again #tag #tag"),
        (("urls",), "see http://t.co/x1 and www.a.com now", "see http and http now"),
        (("brands",), "Tom Brady and the #Patriots lol", "the company and the the company lol"),
        (("brands",), "@united lost my bag", "the company lost my bag"),
        # Common words are brands only as a mention or hashtag.
        (
            ("brands",),
            "we are united, said the apple farmer",
            "we are united, said the apple farmer",
        ),
        (("mentions",), "mail a@b.com", "mail a@b.com"),
        (KINDS, "@JetBlue love it!! http://t.co/q #happy", "the company love it!! http #tag"),
    ],
)
def test_mask_text(kinds: tuple[str, ...], text: str, expected: str) -> None:
    assert mask_text(text, kinds) == expected


@given(st.text(alphabet="abcdefghij .,!?'", max_size=60))
def test_text_without_topic_carriers_is_untouched(text: str) -> None:
    assert mask_text(text, KINDS) == text


@given(st.text(max_size=80))
def test_masking_is_idempotent(text: str) -> None:
    once = mask_text(text, KINDS)
    assert mask_text(once, KINDS) == once


def test_unknown_kind_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown mask kind 'emoji'"):
        check_kinds(["mentions", "emoji"])
