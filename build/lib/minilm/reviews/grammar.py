"""How one latent opinion becomes a review: clauses, negation, contrast, verdicts.

The rule that maps text to opinion is the same in every file, and a careful reader applies it:

- a plain clause says what its sentiment word says: "the soup was superb" is positive;
- negation flips it: "the soup was not good", "there was nothing good about the soup" are
  negative; "the soup was not bad at all", "the soup was never disappointing" are positive;
- a degree word ("really", "rather") changes the strength, never the direction;
- in a contrast the LAST clause decides: "the soup was great, but the service was awful" and
  "although the service was great, the soup was awful" are both negative.

A review holds one opinion. Every sentence agrees with it except the conceded first clause of a
contrast, and verdicts ("i will never go back", "two stars out of five") follow from it. So in
the unlabeled text a sentiment word predicts the sentences after it, which is what lets a language
model learn what the word means.
"""

from __future__ import annotations

import random
import re

from minilm.reviews.vocab import (
    INTENSIFIERS,
    LINKS,
    NAMED_SLOTS,
    NOUN_INTENSIFIERS,
    RECOMMEND_NO,
    RECOMMEND_YES,
    SHARED_SLOTS,
    STARS_NO,
    STARS_YES,
    Domain,
    Lexicon,
    Polar,
)

_SLOT = re.compile(r"\{(\w+)\}")


def with_article(phrase: str) -> str:
    """ "a great meal", "an awful meal": the article follows the first sound (here: letter)."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


class ReviewWriter:
    """Writes sentences for one domain, drawing sentiment words from the given lexicons.

    With `lexicons=(VISIBLE,)` no transfer word can appear; with `(VISIBLE, TRANSFER)` every
    sentiment slot picks one of the two sets with equal chance, so both sets fill the same slots
    next to the same verdicts.
    """

    def __init__(self, rng: random.Random, domain: Domain, lexicons: tuple[Lexicon, ...]):
        self.rng = rng
        self.domain = domain
        self.lexicons = lexicons
        self.used: set[str] = set()  # aspects already mentioned in the current review
        self.names: dict[str, str] = {}  # the venue, city, rating, summary of the current review

    def new_review(self) -> None:
        """Forget the aspects of the last review (one review never judges an aspect twice)."""
        self.used.clear()
        self.names.clear()

    # --- small pieces -------------------------------------------------------------------------

    def fill(self, template: str, **given: str) -> str:
        """Replace every {slot} by `given[slot]` or else a random entry of the list of that name."""
        d = self.domain

        def pick(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in given:
                return given[name]
            own = {"thing": d.things, "experience": d.experiences}
            choices = own.get(name) or d.slots.get(name) or SHARED_SLOTS[name]
            if name not in NAMED_SLOTS:
                return self.fill(self.rng.choice(choices))  # an entry may hold slots itself
            if name not in self.names:  # a review names one restaurant, one film, one city
                self.names[name] = self.fill(self.rng.choice(choices))
            return self.names[name]

        return _SLOT.sub(pick, template)

    def sentiment(self, part: str, positive: bool) -> str:
        """A sentiment word: `part` names a Lexicon field ("adjectives", "verbs", "nouns", "turns")."""
        polar: Polar = getattr(self.rng.choice(self.lexicons), part)
        return self.rng.choice(polar.of(positive))

    def degree(self, p: float = 0.35) -> str:
        """An optional degree word with a trailing space, e.g. "really "."""
        return self.rng.choice(INTENSIFIERS) + " " if self.rng.random() < p else ""

    def subject(self) -> tuple[str, str]:
        """A fresh aspect ("soup", "fries") and the matching past tense of "to be".

        Fresh within the review, so a contrast never reads "the soup was great, but the soup was awful".
        """
        d = self.domain
        aspect = self.rng.choice([a for a in d.aspects + d.plural_aspects if a not in self.used])
        self.used.add(aspect)
        be = "were" if aspect in d.plural_aspects else "was"
        return aspect, be

    # --- clauses: each returns text (no final period) that expresses `positive` ------------------

    def plain(self, positive: bool) -> str:
        aspect, be = self.subject()
        kind = self.rng.random()
        if kind < 0.55:
            return f"the {aspect} {be} {self.degree()}{self.sentiment('adjectives', positive)}"
        if kind < 0.65:
            # Restated with a second word of the same polarity ("great, truly superb"): the first
            # word predicts the second, the most direct way to learn that two words mean alike.
            first, second = self.sentiment("adjectives", positive), self.sentiment("adjectives", positive)
            return f"the {aspect} {be} {first}, {self.degree(p=0.7)}{second}"
        if kind < 0.85:
            pronoun = self.rng.choice(("i", "we"))
            return f"{pronoun} {self.sentiment('verbs', positive)} the {aspect}"
        real = self.rng.choice(NOUN_INTENSIFIERS) + " " if self.rng.random() < 0.3 else ""
        return f"the {aspect} {be} {with_article(real + self.sentiment('nouns', positive))}"

    def negated(self, positive: bool) -> str:
        """A clause whose sentiment word has the OTHER polarity, under a negation."""
        aspect, be = self.subject()
        word = self.sentiment("adjectives", not positive)
        forms = [f"the {aspect} {be} not {word} at all", f"the {aspect} {be} never {word}",
                 f"the {aspect} {be} far from {word}", f"there was nothing {word} about the {aspect}"]
        if not positive:
            # "not good" and "not really great" are clearly negative; "not bad" alone is faint
            # praise a reader might doubt, so a negated negative word always gets "at all" etc.
            hedge = self.rng.choice(("", "", "very ", "really "))
            forms.append(f"the {aspect} {be} not {hedge}{word}")
        return self.rng.choice(forms)

    def clause(self, positive: bool, p_negated: float = 0.3) -> str:
        return self.negated(positive) if self.rng.random() < p_negated else self.plain(positive)

    def turn(self, positive: bool) -> str:
        """A clause that decides a contrast by itself: "the service ruined it"."""
        aspect, _ = self.subject()
        what = self.rng.choice(("it", "everything", "the {experience}"))
        return self.fill(f"the {aspect} {self.sentiment('turns', positive)} {what}")

    # --- sentences --------------------------------------------------------------------------------

    def contrast(self, positive: bool) -> str:
        """Two clauses of opposite polarity; the last one carries the review's opinion."""
        conceded = self.clause(not positive)
        deciding = self.turn(positive) if self.rng.random() < 0.2 else self.clause(positive)
        form = self.rng.randrange(5)
        if form == 0:
            return f"{conceded}, but {deciding}."
        if form == 1:
            return f"although {conceded}, {deciding}."
        if form == 2:
            return f"even though {conceded}, {deciding}."
        if form == 3:
            return f"{conceded}. however, {deciding}."
        return f"{conceded}, yet {deciding}."

    def aspect_sentence(self, positive: bool, p_contrast: float, p_negated: float) -> str:
        """One sentence about aspects: plain, negated, two joined by "and", or a contrast."""
        r = self.rng.random()
        if r < p_contrast:
            return self.contrast(positive)
        if r < p_contrast + 0.15:
            return f"{self.clause(positive, p_negated)} and {self.clause(positive, p_negated)}."
        if r < p_contrast + 0.22:
            aspect, _ = self.subject()
            return f"{self.degree()}{self.sentiment('adjectives', positive)} {aspect}."
        return self.clause(positive, p_negated) + self.rng.choice((".", ".", ".", "!"))

    def linked(self, positive: bool, p_negated: float) -> str:
        """A plain sentence opened by a link that announces the opinion: "sadly, the soup was cold"."""
        link = self.rng.choice(LINKS.of(positive))
        return f"{link}, {self.aspect_sentence(positive, p_contrast=0.0, p_negated=p_negated)}"

    def verdict(self, positive: bool) -> str:
        """A sentence about the whole experience that follows from the opinion."""
        d = self.domain
        if self.rng.random() < 0.3 and "summary" not in self.names:  # one summary per review
            adjective = self.degree() + self.sentiment("adjectives", positive)
            self.names["summary"] = adjective
            template = self.rng.choice(("overall, {an_adjective} {experience}.",
                                        "all in all, {thing} was {adjective}.",
                                        "what {an_adjective} {experience}!", "in short: {adjective}."))
            return self.fill(template, adjective=adjective, an_adjective=with_article(adjective))
        stars = STARS_YES if positive else STARS_NO
        lists = (d.again_yes, RECOMMEND_YES, stars) if positive else (d.again_no, RECOMMEND_NO, stars)
        verdict = self.rng.choice(self.rng.choice(lists))
        if verdict in stars:  # one rating per review: a second one repeats the first
            verdict = self.names.setdefault("rating", verdict)
        return self.fill(verdict) + "."

    def opener(self) -> str:
        return self.fill(self.rng.choice(self.domain.openers))

    def filler(self) -> str:
        return self.fill(self.rng.choice(self.domain.fillers))
