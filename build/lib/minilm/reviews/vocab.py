"""The words of the review world: sentiment words in two disjoint sets, and four domains.

Every sentiment entry is ONE word, so the leak checks in `check.py` can count them with a
plain split. Two sets carry sentiment:

- VISIBLE words appear everywhere: in the labeled train/valid/test splits and in the unlabeled
  corpus. The classifier learns them from labels.
- TRANSFER words appear only in the unlabeled corpus (in exactly the slots the visible words fill,
  next to the same verdicts) and in `transfer.tsv`. The classifier never sees them with a label,
  so it can only get them right through what pretraining taught: "superb" is followed by the same
  text as "great".

Within one set, the positive and negative lists of a part of speech have the same length: the
transfer split renders each review twice from one random state, once per polarity, and equal
lengths make the two renderings pick aligned words (see `world.py`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Polar:
    """Words of one part of speech, split by polarity."""

    positive: tuple[str, ...]
    negative: tuple[str, ...]

    def of(self, positive: bool) -> tuple[str, ...]:
        return self.positive if positive else self.negative


@dataclass(frozen=True)
class Lexicon:
    """One set of sentiment words: adjectives, verbs (past tense), nouns, and turn verbs.

    A turn verb decides a contrast on its own: "the food was great, but the service RUINED it".
    """

    adjectives: Polar
    verbs: Polar
    nouns: Polar
    turns: Polar

    def words(self, positive: bool) -> set[str]:
        """Every sentiment word of this set with the given polarity."""
        parts = (self.adjectives, self.verbs, self.nouns, self.turns)
        return {word for part in parts for word in part.of(positive)}


VISIBLE = Lexicon(
    adjectives=Polar(
        positive=("good", "great", "excellent", "wonderful", "amazing", "fantastic",
                  "lovely", "nice", "perfect", "impressive", "pleasant", "brilliant"),
        negative=("bad", "awful", "terrible", "horrible", "poor", "disappointing",
                  "mediocre", "unpleasant", "lousy", "sloppy", "nasty", "weak"),
    ),
    verbs=Polar(positive=("loved", "enjoyed", "liked"), negative=("hated", "disliked", "regretted")),
    nouns=Polar(positive=("treat", "pleasure", "highlight", "joy"),
                negative=("letdown", "mess", "disappointment", "joke")),
    turns=Polar(positive=("saved", "rescued"), negative=("ruined", "spoiled")),
)

TRANSFER = Lexicon(
    adjectives=Polar(
        positive=("superb", "splendid", "stellar", "marvelous", "outstanding", "exquisite",
                  "magnificent", "phenomenal", "sublime", "glorious", "exceptional", "fabulous",
                  "impeccable", "remarkable"),
        negative=("dreadful", "abysmal", "atrocious", "appalling", "dismal", "horrendous",
                  "abominable", "deplorable", "pathetic", "shoddy", "woeful", "ghastly",
                  "wretched", "lamentable"),
    ),
    verbs=Polar(positive=("adored", "relished", "admired"), negative=("loathed", "detested", "despised")),
    nouns=Polar(positive=("triumph", "revelation", "gem"), negative=("disaster", "fiasco", "travesty")),
    turns=Polar(positive=("redeemed",), negative=("wrecked",)),
)



def made_up_names(count: int) -> tuple[str, ...]:
    """`count` invented, pronounceable surnames ("delmoru", "strakeni"), always the same ones.

    Real reviews are full of rare names. Without them this world would hold only ~1,200 distinct
    words, too few for a ~4k-piece BPE vocabulary to exist (SentencePiece refuses to train), and
    every word would be one token. Names never collide with a sentiment word.
    """
    rng = random.Random("made-up-names")
    onsets = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
              "br", "dr", "gr", "kr", "st", "tr", "ch", "sh", "th")
    vowels = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ou", "ei")
    codas = ("", "", "", "n", "r", "l", "s", "m", "k")
    sentiment = {w for lexicon in (VISIBLE, TRANSFER) for p in (True, False) for w in lexicon.words(p)}
    names: set[str] = set()
    while len(names) < count:
        syllables = rng.randint(2, 3)
        name = "".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(syllables))
        if name not in sentiment:
            names.add(name)
    return tuple(sorted(names))


SURNAMES = made_up_names(800)

# Sentence openers that only the unlabeled corpus uses: "luckily, the staff were lovely." They make
# the token right after a period depend on the opinion, so a language model must carry the
# opinion in its hidden state at every period, which is where the classifier reads a review.
LINKS = Polar(positive=("luckily", "happily", "thankfully", "better still", "best of all"),
              negative=("sadly", "unfortunately", "worse", "worse still", "to make it worse"))

# Degree words: they change how strong an opinion is, never which way it points, so each is
# used with both polarities equally often (otherwise "very" itself would become a label cue).
INTENSIFIERS = ("really", "very", "truly", "extremely", "incredibly", "quite", "rather",
                "pretty", "so", "genuinely")
NOUN_INTENSIFIERS = ("real", "true", "complete")


@dataclass(frozen=True)
class Domain:
    """One kind of thing people review, with its aspects and its neutral, domain-specific text.

    Templates may hold {slot}s: a slot names a list in `slots` here or in SHARED_SLOTS, and each
    occurrence is replaced by a random entry. Neutral text never contains a sentiment word.
    """

    name: str
    aspects: tuple[str, ...]  # singular: "the soup was ..."
    plural_aspects: tuple[str, ...]  # plural: "the fries were ..."
    things: tuple[str, ...]  # what the whole review is about
    experiences: tuple[str, ...]  # "what a superb {experience}"
    openers: tuple[str, ...]  # neutral first sentences
    fillers: tuple[str, ...]  # neutral sentences between opinions
    again_yes: tuple[str, ...]  # the writer will return / watch again / buy again
    again_no: tuple[str, ...]
    slots: dict[str, tuple[str, ...]]


# Slots that name one thing per review: once a review picks its restaurant, it stays there.
NAMED_SLOTS = frozenset({"venue", "title", "director", "hotel", "city", "brand", "model"})

SHARED_SLOTS: dict[str, tuple[str, ...]] = {
    "person": ("my wife", "my husband", "my sister", "my brother", "my mother", "my father",
               "my friend", "two friends", "my boss", "my partner", "my son", "my daughter",
               "{first}", "{first}", "{first}", "{first} {surname}"),
    "first": ("anna", "ben", "carla", "david", "elena", "felix", "grace", "hugo", "iris",
               "jonas", "kate", "leo", "maria", "nina", "oscar", "paula", "rosa", "sam",
               "tara", "victor", "will", "zoe", "omar", "lucy", "mateo", "hana", "ravi", "mia",
              "ines", "pablo", "chloe", "arjun", "freya", "tomas", "yara", "noah", "eva", "dan"),
    "surname": SURNAMES,
    "day": ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
    "month": ("january", "february", "march", "april", "may", "june", "july", "august",
              "september", "october", "november", "december"),
    "count": ("two", "three", "four", "five", "six", "seven", "ten", "twelve", "fifteen", "twenty"),
    "city": ("lisbon", "oslo", "madrid", "berlin", "dublin", "prague", "vienna", "naples",
             "porto", "krakow", "seville", "lyon", "bristol", "leeds", "boston", "denver",
             "austin", "montreal", "osaka", "sydney"),
    "weather": ("it was raining", "it was very hot outside", "it was snowing",
                "the weather was cold", "it was a warm evening"),
}

RESTAURANT = Domain(
    name="restaurant",
    aspects=("food", "service", "pasta", "pizza", "soup", "salad", "steak", "fish", "burger",
             "dessert", "coffee", "wine", "bread", "menu", "atmosphere", "music", "waiter",
             "curry", "cake", "terrace"),
    plural_aspects=("staff", "fries", "portions", "prices", "drinks", "noodles", "cocktails"),
    things=("this place", "this restaurant", "{venue}"),
    experiences=("meal", "dinner", "lunch", "evening", "night out"),
    openers=("we went to {venue} for {occasion}.", "i had dinner at {venue} with {person} on {day}.",
             "{person} booked a table at {venue} for {time}.", "we tried {venue} while visiting {city}.",
             "{venue} opened near my office last {month}.", "i ate at {venue} on a busy {day}."),
    fillers=("we sat by the window.", "we ordered the {dish} and the {dish}.",
             "we waited {count} minutes for a table.", "{weather}, so the place was full.",
             "the kitchen closes at {time}.", "{person} had the {dish}.",
             "the chef, {first} {surname}, came out to say hello.", "our waiter was called {first}."),
    again_yes=("we will definitely come back", "i can't wait to eat here again",
               "we are already planning our next visit", "i will be back next {day}"),
    again_no=("we will never go back", "i won't be eating here again",
              "once was more than enough", "we will eat somewhere else next time"),
    slots={
        "venue": ("the blue door", "casa mia", "the old mill", "luigi's", "the corner table",
                  "saffron house", "the green fork", "harbor grill", "noodle bar nine",
                  "the red lantern", "el patio", "bistro marcel",
                  "casa {surname}", "{surname} kitchen", "chez {surname}", "the {surname} grill",
                  "{surname} noodle house", "trattoria {surname}"),
        "occasion": ("my birthday", "a quick lunch", "our anniversary", "a work dinner",
                     "a family meal", "a late dinner"),
        "time": ("seven", "eight", "nine", "half past six", "ten"),
        "dish": ("lasagna", "risotto", "ramen", "tacos", "paella", "chicken", "lamb", "tart",
                 "gnocchi", "dumplings", "omelette", "ribs"),
    },
)

FILM = Domain(
    name="film",
    aspects=("plot", "story", "acting", "cast", "dialogue", "script", "soundtrack", "ending",
             "pacing", "camera work", "lead actor", "villain", "direction", "first half",
             "score", "editing", "final scene", "humor"),
    plural_aspects=("jokes", "special effects", "characters", "costumes", "fight scenes"),
    things=("this film", "this movie", "{title}"),
    experiences=("film", "movie", "evening at the cinema", "watch"),
    openers=("we watched {title} at the cinema on {day}.", "i saw {title} with {person} last {day}.",
             "{title} is the new film by {director}.", "i streamed {title} on a {day} night.",
             "{person} picked {title} for movie night.", "{title} came out in {month}."),
    fillers=("it runs for about two hours.", "the cinema was half empty.", "we had popcorn.",
             "it is based on a novel from {city}.", "{director} also wrote the script.",
             "{first} {surname} plays the detective.", "it was filmed near {city}.",
             "{weather}, so we stayed in."),
    again_yes=("i would happily watch it again", "i want to see it again soon",
               "i will buy it when it comes out", "i am already looking forward to the sequel"),
    again_no=("i want my two hours back", "i nearly walked out", "i will not watch it again",
              "i fell asleep halfway through"),
    slots={
        "title": ("the last harbor", "north of nowhere", "paper moons", "the quiet hour",
                  "seven winters", "the glass city", "night train", "the long road",
                  "river of salt", "the lighthouse keeper", "echo park", "the silver fox",
                  "the {surname} affair", "return to {surname}", "{surname}", "the {surname} files"),
        "director": ("ana ruiz", "tom becker", "li wei", "sara holm", "jean marchand",
                     "kofi mensah", "yuki sato", "peter olsen", "{first} {surname}"),
    },
)

HOTEL = Domain(
    name="hotel",
    aspects=("room", "bed", "bathroom", "shower", "breakfast", "pool", "view", "location",
             "reception", "wifi", "balcony", "lobby", "spa", "bar", "gym", "check in", "cleaning"),
    plural_aspects=("staff", "towels", "pillows", "prices", "rooms"),
    things=("this hotel", "{hotel}"),
    experiences=("stay", "weekend", "trip", "holiday"),
    openers=("we stayed at {hotel} for {count} nights in {city}.",
             "i booked {hotel} for a work trip to {city}.",
             "{person} and i spent a weekend at {hotel}.", "we checked in to {hotel} on a {day}.",
             "{hotel} is a short walk from the station in {city}."),
    fillers=("our room was on the {floor} floor.", "we arrived late on {day}.",
             "the hotel has {count} floors.", "{weather} most of the week.",
             "the old town is ten minutes away on foot.",
             "the manager, {first} {surname}, met us at the door.", "we paid for breakfast separately."),
    again_yes=("we would stay here again", "next time we visit {city} we are staying here",
               "we have already booked our next stay"),
    again_no=("we will never stay here again", "next time we visit {city} we are going elsewhere",
              "we checked out a day early"),
    slots={
        "hotel": ("hotel astoria", "the grand plaza", "seaview inn", "the park lodge",
                  "hotel central", "the river house", "casa blanca hotel", "the old station hotel",
                  "hotel {surname}", "the {surname} inn", "villa {surname}", "the {surname} lodge"),
        "floor": ("first", "second", "third", "fifth", "top"),
    },
)

LAPTOP = Domain(
    name="laptop",
    aspects=("battery", "screen", "keyboard", "trackpad", "camera", "charger", "fan", "hinge",
             "case", "build quality", "performance", "delivery", "packaging", "price",
             "customer support", "manual", "software", "webcam", "microphone"),
    plural_aspects=("speakers", "ports", "keys", "updates"),
    things=("this laptop", "the {brand} {model}"),
    experiences=("purchase", "laptop", "machine", "buy"),
    openers=("i bought this laptop for {purpose}.", "i ordered the {brand} {model} last {month}.",
             "{person} gave me the {brand} {model} for my birthday.",
             "i needed a new laptop for {purpose}.", "the {brand} {model} arrived on {day}."),
    fillers=("i use it every day for {purpose}.", "it came with a {count} year warranty.",
             "i have had it for {count} weeks now.", "it weighs about two kilos.",
             "i mostly use it at home in {city}.", "setup took about ten minutes.",
             "i read about it on {surname} tech.",
             "i paid for it with a voucher from {surname} electronics."),
    again_yes=("i would buy it again", "i already ordered a second one for {person}",
               "i will buy from {brand} again"),
    again_no=("i am sending it back", "i already asked for a refund", "i will never buy from {brand} again"),
    slots={
        "brand": ("novatek", "arcbook", "lumen", "zentra", "orbit", "kestrel", "{surname}", "{surname}"),
        "model": ("x13", "pro 15", "air 14", "s7", "one", "z5"),
        "purpose": ("work", "school", "photo editing", "gaming", "writing", "travel"),
    },
)

DOMAINS = (RESTAURANT, FILM, HOTEL, LAPTOP)

# Verdicts every domain shares; {thing} and {person} are filled like any slot.
RECOMMEND_YES = ("i would recommend {thing} to anyone", "i can't recommend {thing} enough",
                 "highly recommended", "definitely worth it",
                 "go and try {thing} yourself", "i have already told {person} to try it")
RECOMMEND_NO = ("i would not recommend {thing} to anyone", "avoid {thing}",
                "never again", "what a waste of money",
                "save your money", "i told {person} to stay away")
STARS_YES = ("five stars", "four stars out of five", "nine out of ten", "ten out of ten")
STARS_NO = ("one star", "two stars out of five", "two out of ten", "zero out of ten")
