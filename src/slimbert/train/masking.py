"""Topic-leakage controls: mask what tells a tweet's topic, not its sentiment, in training text.

In tweets3 the labels follow the topics: most ``@united`` tweets are complaints, most
``#Coachella2015`` tweets are neutral line-up news. A model trained on them learns "airline →
negative", which is wrong on every other domain. Masking the carriers of topic in the
*training* text takes that shortcut away, so the model has to read the words that carry
sentiment. The four kinds together were measured in docs/sentiment.md (each on its own: not
yet):

* ``mentions``: ``@united`` → ``@user`` (the convention of TweetEval, Barbieri et al. 2020);
* ``hashtags``: ``#DeflateGate`` → ``#tag``: a hashtag names a topic far more often than a
  feeling (``#fail`` is lost too: the measurement decides whether that costs more);
* ``urls``: ``http://t.co/…`` → ``http``;
* ``brands``: the companies, teams and events that dominate tweets3 (:data:`BRANDS`, taken
  from its most frequent mentions and hashtags) → ``the company``, also as plain words.

Masking applies to training text only (gold, and the silver set a student learns from);
validation, test and served text are left as the user wrote them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from slimbert.errors import ConfigError

KINDS = ("mentions", "hashtags", "urls", "brands")
# The brands, teams and events behind tweets3's topics: its most frequent @mentions and
# #hashtags (airlines, Apple, Google, the NFL's DeflateGate, Coachella). Lower case; matched
# as whole words, and as the words inside a mention or hashtag ("@united", "#unitedairlines").
BRANDS = (
    "united airlines",
    "usairways",
    "us airways",
    "american airlines",
    "americanair",
    "southwest airlines",
    "southwestair",
    "jetblue",
    "virgin america",
    "virginamerica",
    "apple inc",
    "aapl",
    "iphone",
    "google",
    "coachella",
    "deflategate",
    "patriots",
    "tom brady",
    "brady",
    "belichick",
    "seahawks",
    "nfl",
    "super bowl",
    "superbowl",
)
# Common words that are brands only as a mention or hashtag ("we are united", "a river delta").
TAGGED_ONLY = ("united", "delta", "apple", "southwest")
_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_MENTION = re.compile(r"(?<!\w)@\w+")
_HASHTAG = re.compile(r"(?<!\w)#\w+")
_BRAND = re.compile(
    r"(?<![\w])[@#]?(?:"
    + "|".join(re.escape(b).replace(r"\ ", r"\s+") for b in sorted(BRANDS, key=len, reverse=True))
    + r")\w*|[@#](?:"
    + "|".join(TAGGED_ONLY)
    + r")\w*",
    re.IGNORECASE,
)


def check_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(kinds)
    unknown = [k for k in chosen if k not in KINDS]
    if unknown:
        raise ConfigError(
            f"unknown mask kind {unknown[0]!r}", hint=f"choose from {', '.join(KINDS)}"
        )
    return chosen


def mask_text(text: str, kinds: Sequence[str]) -> str:
    """``text`` with each kind of topic carrier replaced (order: URLs, brands, mentions, tags)."""
    if "urls" in kinds:
        text = _URL.sub("http", text)
    if "brands" in kinds:
        text = _BRAND.sub("the company", text)
    if "mentions" in kinds:
        text = _MENTION.sub("@user", text)
    if "hashtags" in kinds:
        text = _HASHTAG.sub("#tag", text)
    return text


def mask_texts(texts: Sequence[str], kinds: Sequence[str]) -> list[str]:
    return [mask_text(t, kinds) for t in texts] if kinds else list(texts)
