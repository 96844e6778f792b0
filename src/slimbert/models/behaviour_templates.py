"""The sentence frames of the packaged behaviour suite, and the seeded generator that expands
them with the words of :mod:`slimbert.models.behaviour_words`.

Run ``python -m slimbert.models.behaviour_templates`` after editing a template or a word list
to rewrite ``slimbert/checks/sentiment3.jsonl``; a test fails while the committed file and the
generator disagree (bump ``slimbert.models.behaviour.SUITE_VERSION`` when an edit changes what
the suite tests, so that results name the suite they ran). Every capability × domain pair
draws from its own ``random.Random`` (seeded with a string, which Python hashes with sha512:
the same on every machine and run), so editing one capability's templates leaves the others'
cases unchanged.

The templates were written from everyday English, not from any model's mistakes.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, TypeVar

from slimbert.io import atomic_open
from slimbert.models.behaviour import SUITE_FILE, Case, Direction
from slimbert.models.behaviour_words import (
    DOMAINS,
    EXTREME,
    GENERAL_NEGATIVE,
    GENERAL_POSITIVE,
    INTENSIFY_EXTREME,
    INTENSIFY_GRADABLE,
    NAMES,
    NUMBER_SLOTS,
    PLACES,
    Domain,
    Topic,
)

SEED = "slimbert-sentiment3"
# P(label) may move the forbidden way by this much before a dir case fails: model noise of a
# few hundredths on a confident prediction is not a change of opinion.
DIRECTION_TOLERANCE = 0.05
VARIANTS = 4  # texts per name, place and number invariance case

VOCABULARY_FRAMES = (
    "The {n} was {a}.",
    "This {n} is {a}.",
    "What {an_a} {n}!",
    "I thought the {n} was {a}.",
    "Honestly, the {n} was {a}.",
    "I found the {n} {a}.",
    "The {n} is {a}.",
)
NEGATED_POSITIVE_FRAMES = (
    "The {n} was not {a}.",
    "The {n} wasn't {a}.",
    "I don't think the {n} was {a}.",
    "The {n} was not {a} at all.",
    "I wouldn't say the {n} was {a}.",
    "The {n} was far from {a}.",
)
NEGATED_NEGATIVE_FRAMES = (
    "The {n} was not {a}.",
    "The {n} wasn't {a} at all.",
    "I don't think the {n} was {a}.",
    "I wouldn't say the {n} was {a}.",
    "The {n} was not {a} at all.",
    "I didn't find the {n} {a}.",
)
INTENSIFIER_FRAMES = (
    "The {n} was {i} {a}.",
    "This {n} is {i} {a}.",
    "I thought the {n} was {i} {a}.",
)
# Each frame: (final polarity, text with {pos} and {neg}); the clause after "but" decides.
# {it} {was} {is} become "they were/are" for people.
CONTRAST_FRAMES = (
    ("positive", "I expected the {n} to be {neg}, but {it} {was} {pos}."),
    ("positive", "I was worried the {n} would be {neg}, but {it} turned out {pos}."),
    ("positive", "At first I thought the {n} was {neg}, but now I think {it} {is} {pos}."),
    ("negative", "Everyone said the {n} would be {pos}, but {it} {was} {neg}."),
    ("negative", "I expected the {n} to be {pos}, but {it} {was} {neg}."),
    ("negative", "I used to think the {n} was {pos}, but now I think {it} {is} {neg}."),
)
NAME_FRAMES = (
    "{name} said the {n} was {a}.",
    "{name} thought the {n} was {a}.",
    "According to {name}, the {n} was {a}.",
    "{name} told me the {n} was {a}.",
)
NEGATIVE_SUFFIXES = (
    "I hated it.",
    "Never again.",
    "Very disappointing.",
    "I would not recommend it.",
    "What a waste of money.",
    "I regret it.",
    "Not impressed at all.",
)
POSITIVE_SUFFIXES = (
    "I loved it.",
    "Highly recommended.",
    "Very happy with it.",
    "I would recommend it to anyone.",
    "Well worth it.",
    "Really impressive.",
)

Kind = Literal["mft", "inv", "dir"]
Draft = tuple[list[str], tuple[str, ...] | None, Direction | None]
Builder = Callable[[random.Random, Domain, int], Draft]
T = TypeVar("T")
_FORMATTER = string.Formatter()
_POLARITIES = ("positive", "negative")


def _an(word: str) -> str:
    """``word`` with its indefinite article ("an awful", "a useless")."""
    vowel = word[0] in "aeiou" and not word.startswith(("use", "uni"))
    return f"an {word}" if vowel else f"a {word}"


def _slots(frame: str) -> set[str]:
    return {field for _, field, _, _ in _FORMATTER.parse(frame) if field}


def _phrase(rng: random.Random, domain: Domain, polarity: str) -> tuple[Topic, str, str]:
    """A topic, one of its nouns and one of its adjectives of ``polarity``."""
    topic = rng.choice(domain.topics)
    pool = topic.positive if polarity == "positive" else topic.negative
    return topic, rng.choice(topic.nouns), rng.choice(pool)


def _draw(frame: str, rng: random.Random, values: dict[str, str], polarity: str) -> dict[str, str]:
    """``values`` completed for ``frame``: names, places, numbers and a general {a} drawn."""
    filled = dict(values)
    slots = _slots(frame)
    for slot in sorted(slots - set(filled)):
        if slot == "name":
            filled[slot] = rng.choice(NAMES)
        elif slot == "place":
            filled[slot] = rng.choice(PLACES)
        elif slot in NUMBER_SLOTS:
            filled[slot] = str(rng.randint(*NUMBER_SLOTS[slot]))
    if "a" not in filled and slots & {"a", "an_a"}:
        filled["a"] = rng.choice(GENERAL_POSITIVE if polarity == "positive" else GENERAL_NEGATIVE)
    return filled


def _format(frame: str, values: dict[str, str]) -> str:
    extra = {"an_a": _an(values["a"])} if "a" in values else {}
    return frame.format(**values, **extra)


def _fill(frame: str, rng: random.Random, values: dict[str, str], polarity: str) -> str:
    return _format(frame, _draw(frame, rng, values, polarity))


def _polar(rng: random.Random, domain: Domain, polarity: str, frame: str) -> str:
    _, noun, adjective = _phrase(rng, domain, polarity)
    return _fill(frame, rng, {"n": noun, "a": adjective}, polarity)


def _typo(word: str, rng: random.Random) -> str | None:
    """``word`` with two adjacent inner letters swapped (first and last kept), or None."""
    spots = [
        i for i in range(1, len(word) - 2) if word[i] != word[i + 1] and word[i : i + 2].isalpha()
    ]
    if not spots:
        return None
    i = rng.choice(spots)
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def _pick(frames: tuple[T, ...], i: int, domain: Domain) -> T:
    """Frames in turn, shifted per domain so that every frame is used across the suite."""
    return frames[(i + DOMAINS.index(domain)) % len(frames)]


def _mft_vocabulary(polarity: str) -> Builder:
    def build(rng: random.Random, domain: Domain, i: int) -> Draft:
        text = _polar(rng, domain, polarity, _pick(VOCABULARY_FRAMES, i, domain))
        return [text], (polarity,), None

    return build


def _neutral_facts(rng: random.Random, domain: Domain, i: int) -> Draft:
    return [domain.facts[i]], ("neutral",), None


def _negation(negated: str) -> Builder:
    """Negated positives must read negative; negated negatives anything but negative."""
    frames = NEGATED_POSITIVE_FRAMES if negated == "positive" else NEGATED_NEGATIVE_FRAMES
    expected = ("negative",) if negated == "positive" else ("neutral", "positive")

    def build(rng: random.Random, domain: Domain, i: int) -> Draft:
        topic = rng.choice(domain.topics)
        pool = topic.negatable_positive if negated == "positive" else topic.negatable_negative
        values = {"n": rng.choice(topic.nouns), "a": rng.choice(pool)}
        return [_fill(_pick(frames, i, domain), rng, values, negated)], expected, None

    return build


def _intensifiers(rng: random.Random, domain: Domain, i: int) -> Draft:
    polarity = _POLARITIES[i % 2]
    _, noun, adjective = _phrase(rng, domain, polarity)
    words = INTENSIFY_EXTREME if adjective in EXTREME else INTENSIFY_GRADABLE
    values = {"n": noun, "a": adjective, "i": rng.choice(words)}
    return [_fill(_pick(INTENSIFIER_FRAMES, i, domain), rng, values, polarity)], (polarity,), None


def _contrast(rng: random.Random, domain: Domain, i: int) -> Draft:
    final, frame = _pick(CONTRAST_FRAMES, i, domain)
    topic = rng.choice(domain.topics)
    pronoun = ("they", "were", "are") if topic.people else ("it", "was", "is")
    values = dict(zip(("it", "was", "is"), pronoun, strict=True))
    values.update(n=rng.choice(topic.nouns), pos=rng.choice(topic.positive))
    values["neg"] = rng.choice(topic.negative)
    return [frame.format(**values)], (final,), None


def _varied(kind: str) -> Builder:
    """An inv builder: one frame, ``VARIANTS`` texts differing only in names/places/numbers."""

    def build(rng: random.Random, domain: Domain, i: int) -> Draft:
        frames = {
            "name": domain.name_facts + NAME_FRAMES,
            "place": domain.place_frames,
            "number": domain.number_frames,
        }[kind]
        frame = _pick(frames, i, domain)
        polarity = _POLARITIES[i % 2]
        values: dict[str, str] = {}
        if "n" in _slots(frame):
            _, values["n"], values["a"] = _phrase(rng, domain, polarity)
        values = _draw(frame, rng, values, polarity)  # the slots every variant shares
        varied = sorted(
            s for s in _slots(frame) if s == kind or (kind == "number" and s in NUMBER_SLOTS)
        )
        options = {slot: _distinct(rng, slot) for slot in varied}
        texts = [
            _format(frame, {**values, **{slot: options[slot][j] for slot in varied}})
            for j in range(VARIANTS)
        ]
        return texts, None, None

    return build


def _distinct(rng: random.Random, slot: str) -> list[str]:
    if slot == "name":
        return rng.sample(NAMES, VARIANTS)
    if slot == "place":
        return rng.sample(PLACES, VARIANTS)
    low, high = NUMBER_SLOTS[slot]
    return [str(n) for n in rng.sample(range(low, high + 1), VARIANTS)]


def _case_variants(rng: random.Random, domain: Domain, i: int) -> Draft:
    """As typed, all lower case, all capitals; every fourth case a neutral fact."""
    if i % 4 == 3:
        text = rng.choice(domain.facts)
    else:
        text = _polar(rng, domain, _POLARITIES[i % 2], _pick(VOCABULARY_FRAMES, i, domain))
    return [text, text.lower(), text.upper()], None, None


def _typos(rng: random.Random, domain: Domain, i: int) -> Draft:
    """The original, a typo in the noun (no opinion), a typo in the adjective (the opinion)."""
    polarity = _POLARITIES[i % 2]
    frame = _pick(VOCABULARY_FRAMES, i, domain)
    for _ in range(100):
        _, noun, adjective = _phrase(rng, domain, polarity)
        *head, last = noun.split(" ")
        noun_typo, adjective_typo = _typo(last, rng), _typo(adjective, rng)
        if noun_typo and adjective_typo:
            values = {"n": noun, "a": adjective}
            texts = [
                _format(frame, values),
                _format(frame, {**values, "n": " ".join([*head, noun_typo])}),
                _format(frame, {**values, "a": adjective_typo}),
            ]
            return texts, None, None
    raise RuntimeError(f"no phrase with room for a typo in {domain.name}")  # pragma: no cover


def _punctuation(rng: random.Random, domain: Domain, i: int) -> Draft:
    """As typed, without the final mark, with the other final mark ("." ↔ "!")."""
    text = _polar(rng, domain, _POLARITIES[i % 2], _pick(VOCABULARY_FRAMES, i, domain))
    stem, mark = text[:-1], text[-1]
    return [text, stem, stem + ("." if mark == "!" else "!")], None, None


def _suffix(polarity: str) -> Builder:
    """A dir builder: a neutral or same-polarity opening, then two sentences of ``polarity``."""
    suffixes = NEGATIVE_SUFFIXES if polarity == "negative" else POSITIVE_SUFFIXES
    # A negative suffix must not raise P(positive), and the other way round.
    watched = "positive" if polarity == "negative" else "negative"
    direction = Direction(watched, "increase", DIRECTION_TOLERANCE)

    def build(rng: random.Random, domain: Domain, i: int) -> Draft:
        if i % 2 == 0:
            base = _fill(_pick(domain.experiences, i // 2, domain), rng, {}, "neutral")
        else:
            base = _polar(rng, domain, polarity, _pick(VOCABULARY_FRAMES, i, domain))
        fresh = [s for s in suffixes if s.split()[-1].rstrip(".").lower() not in base.lower()]
        return [base] + [f"{base} {s}" for s in rng.sample(fresh, 2)], None, direction

    return build


# capability → (kind, cases per domain, builder)
CAPABILITIES: dict[str, tuple[Kind, int, Builder]] = {
    "vocabulary_positive": ("mft", 5, _mft_vocabulary("positive")),
    "vocabulary_negative": ("mft", 5, _mft_vocabulary("negative")),
    "neutral_facts": ("mft", 7, _neutral_facts),
    "negation_of_positive": ("mft", 4, _negation("positive")),
    "negation_of_negative": ("mft", 4, _negation("negative")),
    "intensifiers": ("mft", 6, _intensifiers),
    "contrast": ("mft", 4, _contrast),
    "invariance_names": ("inv", 4, _varied("name")),
    "invariance_places": ("inv", 4, _varied("place")),
    "invariance_numbers": ("inv", 4, _varied("number")),
    "invariance_case": ("inv", 4, _case_variants),
    "invariance_typo": ("inv", 5, _typos),
    "invariance_punctuation": ("inv", 4, _punctuation),
    "direction_negative_suffix": ("dir", 5, _suffix("negative")),
    "direction_positive_suffix": ("dir", 5, _suffix("positive")),
}


def generate() -> tuple[Case, ...]:
    """Every case of the suite, sorted by id; the same on every run and machine."""
    return tuple(sorted(_cases(), key=lambda case: case.id))


def _cases() -> Iterator[Case]:
    for capability, (kind, per_domain, build) in CAPABILITIES.items():
        seen: set[tuple[str, ...]] = set()
        for domain in DOMAINS:
            rng = random.Random(f"{SEED}/{capability}/{domain.name}")
            for i in range(per_domain):
                for _ in range(50):  # redraw the rare duplicate
                    texts, expected, direction = build(rng, domain, i)
                    if tuple(texts) not in seen and len(set(texts)) == len(texts):
                        break
                else:  # pragma: no cover - the templates offer far more combinations
                    raise RuntimeError(f"{capability}/{domain.name}: cannot draw a new case")
                seen.add(tuple(texts))
                yield Case(
                    id=f"{capability}/{domain.name}/{i + 1:02d}",
                    capability=capability,
                    kind=kind,
                    domain=domain.name,
                    texts=tuple(texts),
                    expected=expected,
                    direction=direction,
                )


def render(cases: tuple[Case, ...]) -> str:
    """The JSONL text of ``cases``: one case a line, in the given order."""
    return "".join(case.to_json() + "\n" for case in cases)


def write_suite(path: str | Path = SUITE_FILE) -> Path:
    """Write the generated suite to ``path`` (default: the packaged file)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out) as fh:  # a failed run leaves the committed suite whole
        fh.write(render(generate()))
    return out


if __name__ == "__main__":
    print(write_suite())
