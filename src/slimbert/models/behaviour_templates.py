"""The templates of the packaged behaviour suite, and the seeded generator that expands them.

Run ``python -m slimbert.models.behaviour_templates`` after editing a template to rewrite
``slimbert/checks/sentiment3.jsonl``; a test fails while the committed file and the generator
disagree (bump ``slimbert.models.behaviour.SUITE_VERSION`` when an edit changes what the
suite tests, so that results name the suite they ran). Every capability × domain pair draws from its own
``random.Random`` (seeded with a string, which Python hashes with sha512: the same on every
machine and run), so editing one capability's templates leaves the others' cases unchanged.

The templates were written from everyday English, not from any model's mistakes. Nouns and
adjectives are grouped into topics so that each sentence is one a person could write ("The
receptionist was rude.", never "The soup was rude.").
"""

from __future__ import annotations

import dataclasses
import random
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, TypeVar

from slimbert.models.behaviour import SUITE_FILE, Case, Direction

SEED = "slimbert-sentiment3"
# P(label) may move the forbidden way by this much before a dir case fails: model noise of a
# few hundredths on a confident prediction is not a change of opinion.
DIRECTION_TOLERANCE = 0.05
VARIANTS = 4  # texts per name, place and number invariance case


@dataclasses.dataclass(frozen=True)
class Topic:
    """Nouns and the adjectives that read naturally with every one of them."""

    nouns: tuple[str, ...]
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    # Adjectives whose negation is plain English: "not good" (→ negative), "not bad" (→ not
    # negative). Extreme words ("not superb") are left out: their negation is faint praise.
    negatable_positive: tuple[str, ...]
    negatable_negative: tuple[str, ...]
    people: bool = False  # the nouns are people: "they were", not "it was"


@dataclasses.dataclass(frozen=True)
class Domain:
    name: str
    topics: tuple[Topic, ...]
    facts: tuple[str, ...]  # neutral statements, no slots
    experiences: tuple[str, ...]  # neutral narrative openings (dir bases); slots allowed
    name_facts: tuple[str, ...]  # neutral, with {name}
    place_frames: tuple[str, ...]  # with {place}; {a}/{an_a} from GENERAL_* when polar
    number_frames: tuple[str, ...]  # with number slots; {a}/{an_a} from GENERAL_* when polar


def _t(nouns: str, pos: str, neg: str, npos: str, nneg: str, people: bool = False) -> Topic:
    """A topic from comma-separated nouns and negatable positives, space-separated others."""
    return Topic(
        tuple(n.strip() for n in nouns.split(",")),
        tuple(pos.split()),
        tuple(neg.split()),
        tuple(a.strip() for a in npos.split(",")),
        tuple(nneg.split()),
        people,
    )


DOMAINS: tuple[Domain, ...] = (
    Domain(
        "products",
        (
            _t(
                "phone, laptop, printer, kettle, blender, coffee machine, vacuum cleaner, "
                "keyboard, smartwatch, hair dryer",
                "excellent great brilliant fantastic reliable superb impressive",
                "terrible awful useless faulty unreliable disappointing flimsy",
                "good, great, reliable, worth the money",
                "bad terrible awful disappointing",
            ),
            _t(
                "jacket, backpack, pair of boots, umbrella, suitcase, office chair",
                "comfortable excellent great sturdy lovely brilliant",
                "uncomfortable flimsy awful terrible disappointing",
                "good, comfortable, great, sturdy",
                "bad uncomfortable awful terrible",
            ),
        ),
        (
            "The phone comes in black and silver.",
            "The laptop has a 14-inch screen.",
            "The kettle holds 1.7 litres.",
            "The parcel was delivered on Tuesday.",
            "This model has two USB ports.",
            "The manual is available in four languages.",
            "The jacket is made of cotton.",
        ),
        (
            "I bought this phone last month.",
            "I have been using the laptop for {small} weeks.",
            "My sister gave me this blender for my birthday.",
            "I ordered the jacket online on Tuesday.",
        ),
        ("{name} ordered a new kettle on Monday.",),
        (
            "I bought this phone in {place}, and it is {a}.",
            "The shop in {place} sold me {an_a} laptop.",
            "The parcel was sent from {place} on Monday.",
        ),
        (
            "I have had this phone for {small} months, and it is {a}.",
            "Order {code} arrived today, and the kettle is {a}.",
            "The parcel should arrive in {small} days.",
        ),
    ),
    Domain(
        "food",
        (
            _t(
                "soup, pizza, curry, burger, pasta, steak, salad, dessert, sandwich, lasagne",
                "delicious tasty excellent wonderful superb amazing lovely fresh",
                "bland stale greasy disgusting awful overcooked terrible inedible",
                "good, tasty, fresh, great, nice",
                "bad bland greasy awful terrible",
            ),
            _t(
                "restaurant, café, meal, dinner, lunch, breakfast",
                "lovely wonderful excellent fantastic great superb",
                "awful terrible disappointing dreadful horrible",
                "good, great, nice, enjoyable",
                "bad awful terrible disappointing",
            ),
            _t(
                "waiter, waitress, bartender, host",
                "friendly helpful attentive charming lovely welcoming",
                "rude unfriendly dismissive unhelpful slow grumpy",
                "friendly, helpful, attentive, polite",
                "rude unfriendly unhelpful slow",
                people=True,
            ),
        ),
        (
            "The restaurant opens at 6pm.",
            "The menu has twelve dishes.",
            "The café is on the corner of Mill Street.",
            "They serve breakfast until 11.",
            "The soup of the day is tomato.",
            "The pizza comes in two sizes.",
            "We booked a table for four.",
        ),
        (
            "We had dinner at the Italian place on Friday.",
            "I ordered the curry for lunch.",
            "We tried the new café on the high street.",
            "{name} and I went for pizza after work.",
        ),
        ("{name} booked a table for Friday night.",),
        (
            "We had dinner in {place}, and the food was {a}.",
            "The pizza at that little place in {place} was {a}.",
            "The restaurant has a second branch in {place}.",
        ),
        (
            "We sat at table {small}, and the food was {a}.",
            "We got there at {hour}pm, and the meal was {a}.",
            "We booked a table for {small} at {hour}pm.",
        ),
    ),
    Domain(
        "films",
        (
            _t(
                "film, movie, plot, ending, script, sequel, documentary, soundtrack, story, "
                "episode, performance",
                "brilliant gripping wonderful excellent moving beautiful clever superb",
                "boring dull awful predictable tedious terrible weak disappointing",
                "good, funny, interesting, clever, great, original",
                "bad boring dull predictable terrible",
            ),
            _t(
                "lead actor, lead actress, cast, supporting actor",
                "brilliant outstanding superb convincing wonderful excellent",
                "wooden awful unconvincing terrible weak",
                "good, convincing, great",
                "bad wooden terrible awful",
                people=True,
            ),
        ),
        (
            "The film is two hours long.",
            "The movie was released in 2019.",
            "The cinema is on the second floor.",
            "The film is based on a novel.",
            "The sequel comes out in March.",
            "The documentary was filmed in Norway.",
            "The screening starts at 8pm.",
        ),
        (
            "I watched the new thriller last night.",
            "We saw the film at the {hour}pm screening.",
            "I finally watched the documentary everyone is talking about.",
            "We went to the cinema in {place} on Saturday.",
        ),
        ("{name} and I went to the cinema on Saturday.",),
        (
            "We watched it at a cinema in {place}, and the film was {a}.",
            "The film is set in {place}, and it is {a}.",
            "The film was shot in {place}.",
        ),
        (
            "I saw the {hour}pm screening, and the film was {a}.",
            "The film came out in {year}, and it is {a}.",
            "We sat in row {small} at the cinema.",
        ),
    ),
    Domain(
        "service",
        (
            _t(
                "receptionist, support agent, manager, concierge, customer service agent, porter",
                "friendly helpful polite patient wonderful excellent professional",
                "rude unhelpful dismissive useless impatient unprofessional awful",
                "helpful, friendly, polite, professional",
                "rude unhelpful impatient awful",
                people=True,
            ),
            _t(
                "hotel, room, apartment, guesthouse, suite, hostel",
                "spotless comfortable lovely excellent wonderful clean cosy",
                "dirty filthy noisy cramped awful terrible shabby",
                "clean, comfortable, quiet, nice",
                "dirty noisy bad cramped",
            ),
            _t(
                "check-in, booking process, refund process, support chat",
                "smooth quick easy painless excellent efficient",
                "slow confusing chaotic painful awful frustrating",
                "easy, quick, smooth",
                "slow confusing painful bad",
            ),
        ),
        (
            "The hotel has 120 rooms.",
            "Check-in is from 3pm.",
            "The help desk is open on weekdays.",
            "My booking reference is in the email.",
            "The reception is on the ground floor.",
            "I called the support line on Monday.",
            "The hotel is next to the station.",
        ),
        (
            "I called customer support about my bill yesterday.",
            "We stayed at the hotel for {small} nights.",
            "I emailed the help desk about a refund.",
            "We checked in at the guesthouse on Friday evening.",
        ),
        ("{name} checked in at the hotel this morning.",),
        (
            "We stayed at a hotel in {place}, and the staff were {a}.",
            "Our hotel in {place} was {a}.",
            "The hotel is a short walk from the centre of {place}.",
        ),
        (
            "We stayed in room {room}, and it was {a}.",
            "I called the support line at {hour}:30, and the agent was {a}.",
            "The hotel has {room} rooms.",
        ),
    ),
    Domain(
        "travel",
        (
            _t(
                "flight, train journey, bus ride, ferry crossing, trip, coach journey",
                "smooth comfortable pleasant relaxing excellent wonderful lovely",
                "uncomfortable miserable awful exhausting chaotic horrible dreadful",
                "comfortable, pleasant, smooth, good",
                "bad uncomfortable awful exhausting",
            ),
            _t(
                "airport, station, lounge, terminal, platform",
                "clean spacious pleasant excellent great",
                "filthy chaotic dirty awful overcrowded grim",
                "clean, pleasant, good",
                "dirty chaotic bad",
            ),
            _t(
                "flight attendant, cabin crew, conductor, driver, pilot, ticket inspector",
                "friendly helpful polite lovely wonderful",
                "rude unhelpful unfriendly grumpy awful",
                "friendly, helpful, polite",
                "rude unfriendly unhelpful",
                people=True,
            ),
        ),
        (
            "The train leaves from platform 4.",
            "The flight to Madrid takes two hours.",
            "Boarding starts at 7:15.",
            "The bus stops outside the library.",
            "Our seats are in carriage C.",
            "The ferry departs every hour.",
            "The airport has three terminals.",
        ),
        (
            "I took the {hour}:15 train to {place}.",
            "We flew to {place} with them last month.",
            "I took the ferry across to the island.",
            "We booked the night bus to {place}.",
        ),
        ("{name} is flying to Madrid tomorrow.",),
        (
            "Our flight to {place} was {a}.",
            "The train from {place} was {a}.",
            "The train to {place} leaves from platform 2.",
        ),
        (
            "We sat in row {small}, and the flight was {a}.",
            "The {hour}:15 train was {a}.",
            "The train leaves from platform {small}.",
        ),
    ),
    Domain(
        "finance",
        (
            _t(
                "earnings report, quarter, forecast, trading update, outlook, annual report",
                "excellent strong impressive outstanding encouraging solid",
                "weak disappointing terrible dreadful worrying awful bleak",
                "good, strong, encouraging, impressive",
                "bad weak disappointing worrying",
            ),
            _t(
                "bank, banking app, savings account, pension provider, insurance company, "
                "credit card",
                "excellent great brilliant fantastic reliable",
                "awful terrible useless dreadful hopeless unreliable",
                "reliable, good, great",
                "bad useless terrible unreliable",
            ),
            _t(
                "financial adviser, mortgage broker, accountant, bank manager",
                "excellent helpful brilliant patient professional",
                "useless awful unhelpful incompetent rude",
                "helpful, professional, good",
                "bad unhelpful rude",
                people=True,
            ),
            _t(
                "investment, fund, portfolio, pension fund",
                "excellent great fantastic profitable rewarding",
                "terrible awful disastrous disappointing",
                "good, profitable, great",
                "bad terrible disappointing",
            ),
        ),
        (
            "The company has 3,000 employees.",
            "The market opens at 9:30.",
            "The bank sends statements every month.",
            "The annual report has twelve pages.",
            "The shares are listed in Frankfurt.",
            "The interest rate is reviewed every quarter.",
            "The company reports its results in April.",
        ),
        (
            "I moved my savings to this bank last year.",
            "I bought shares in the company in {year}.",
            "I switched my mortgage to them in the spring.",
            "I used their app to send money abroad.",
        ),
        ("{name} opened a savings account last week.",),
        (
            "The bank's branch in {place} was {a}.",
            "Our branch in {place} had {an_a} year.",
            "The company has its headquarters in {place}.",
        ),
        (
            "The company's results for {year} were {a}.",
            "The shares I bought in {year} have been {a}.",
            "The company employs {room} people.",
        ),
    ),
    Domain(
        "everyday",
        (
            _t(
                "weekend, day, morning, party, holiday, birthday, evening, walk, wedding, concert",
                "wonderful lovely great fantastic amazing relaxing fun",
                "awful terrible miserable exhausting boring horrible stressful dreadful",
                "good, fun, great, relaxing, nice",
                "bad boring terrible stressful",
            ),
            _t(
                "neighbour, landlord, new colleague, plumber, dentist",
                "friendly helpful lovely kind wonderful",
                "rude unfriendly awful unhelpful horrible",
                "friendly, helpful, kind",
                "rude unfriendly unhelpful",
                people=True,
            ),
        ),
        (
            "The meeting is at 3pm.",
            "It is Tuesday today.",
            "The library closes at 8pm.",
            "My sister lives in Leeds.",
            "The park is across the road.",
            "I walk to work on Mondays.",
            "The bins are collected on Thursday.",
        ),
        (
            "We spent the afternoon at the park.",
            "I tried the new gym down the road.",
            "We had a barbecue at {name}'s house on Sunday.",
            "I went to the dentist this morning.",
        ),
        ("{name} is coming over for dinner on Sunday.",),
        (
            "Our weekend in {place} was {a}.",
            "The weather in {place} was {a} today.",
            "My brother lives in {place}.",
        ),
        (
            "The summer of {year} was {a}.",
            "The meeting at {hour}pm was {a}.",
            "The meeting is at {hour}pm.",
        ),
    ),
)

GENERAL_POSITIVE = ("great", "excellent", "wonderful", "fantastic", "brilliant")
GENERAL_NEGATIVE = ("terrible", "awful", "dreadful", "disappointing", "horrible")
NAMES = (
    "Maria", "James", "Aisha", "Wei", "Olga", "Carlos", "Priya", "Tom", "Fatima", "Kenji",
    "Emma", "Daniel", "Chiamaka", "Lars", "Sofia", "Mohammed", "Hannah", "Diego", "Mei", "Ivan",
)  # fmt: skip
PLACES = (
    "Lisbon", "Chicago", "Nairobi", "Osaka", "Manchester", "Toronto", "Melbourne", "Berlin",
    "Mumbai", "Lima", "Edinburgh", "Seoul", "Cape Town", "Denver", "Krakow", "Auckland",
)  # fmt: skip
# Numbers where the value carries no opinion: rooms, rows, years, times, order numbers.
NUMBER_SLOTS = {
    "small": (2, 11),
    "hour": (1, 11),
    "room": (101, 599),
    "year": (2009, 2023),
    "code": (1000, 9999),
}
# Extreme adjectives (and "great", "lovely") take "absolutely"/"truly", not "very"/"extremely".
EXTREME = frozenset((
    "excellent", "brilliant", "fantastic", "superb", "wonderful", "amazing", "outstanding",
    "spotless", "filthy", "terrible", "awful", "horrible", "dreadful", "disgusting", "useless",
    "inedible", "miserable", "disastrous", "hopeless", "delicious", "painless", "chaotic",
    "great", "lovely",
))  # fmt: skip
INTENSIFY_GRADABLE = ("extremely", "very", "really", "incredibly", "so")
INTENSIFY_EXTREME = ("absolutely", "truly", "really")

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
    out.write_text(render(generate()), encoding="utf-8")
    return out


if __name__ == "__main__":
    print(write_suite())
