"""The words of the packaged behaviour suite: its domains, their topics, names, places, numbers.

Nouns and adjectives are grouped into topics so that each sentence is one a person could write
("The receptionist was rude.", never "The soup was rude."); each domain also holds neutral
statements and the frames its invariance cases fill. The sentence frames and the seeded
generator that combines them with these words are in :mod:`slimbert.models.behaviour_templates`.
"""

from __future__ import annotations

import dataclasses


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
