"""Sentences for the sample corpus: emotional wording per label, and neutral wording.

Each template has slots filled from word lists, so a few dozen templates give thousands of
distinct sentences. ``template`` ids let an evaluation hold out whole sentence patterns.
"""

from __future__ import annotations

import random
import re

SLOTS: dict[str, list[str]] = {
    "person": [
        "my brother",
        "the manager",
        "our neighbour",
        "my sister",
        "the landlord",
        "my friend Sam",
        "the new teacher",
        "my cousin",
        "the doctor",
        "our coach",
        "my partner",
        "the driver",
        "my grandmother",
        "the mechanic",
        "my old roommate",
    ],
    "object": [
        "car",
        "phone",
        "laptop",
        "bike",
        "camera",
        "guitar",
        "jacket",
        "watch",
        "kitchen table",
        "garden",
        "report",
        "suitcase",
        "notebook",
        "radio",
        "lamp",
    ],
    "place": [
        "the station",
        "the library",
        "the office",
        "the market",
        "the harbour",
        "the museum",
        "the airport",
        "the bakery",
        "the post office",
        "the school",
        "the hospital",
        "the park",
    ],
    "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "time": [
        "nine o'clock",
        "half past ten",
        "noon",
        "a quarter to three",
        "four in the afternoon",
        "six thirty",
        "eight in the evening",
        "seven fifteen",
    ],
    "event": [
        "meeting",
        "concert",
        "wedding",
        "trip",
        "party",
        "match",
        "exam",
        "interview",
        "dinner",
        "holiday",
        "presentation",
        "reunion",
    ],
    "count": ["two", "three", "four", "five", "six", "ten", "twelve", "twenty"],
    "items": ["chairs", "boxes", "tickets", "folders", "cups", "batteries", "envelopes", "plates"],
    "room": [
        "the hall",
        "room four",
        "the basement",
        "the second floor",
        "the kitchen",
        "the lobby",
    ],
    "angry_adj": ["ridiculous", "outrageous", "unacceptable", "infuriating", "absurd", "insulting"],
    "angry_verb": ["broke", "ruined", "lost", "smashed", "wrecked", "damaged"],
    "happy_adj": ["happy", "thrilled", "delighted", "excited", "overjoyed", "glad"],
    "good_news": [
        "we won the prize",
        "we got the house",
        "you passed the exam",
        "the baby arrived safely",
        "we are going on holiday",
        "my sister is getting married",
        "the project was approved",
        "you are finally home",
    ],
    "sad_adj": ["sad", "lonely", "hopeless", "heartbroken", "empty", "miserable"],
    "loss": [
        "the accident",
        "the funeral",
        "she moved away",
        "we lost the dog",
        "he passed away",
        "the shop closed for good",
        "they said goodbye",
        "the letter arrived",
    ],
}

# Emotional wording: the words alone say the emotion.
EMOTION_TEMPLATES: dict[str, list[str]] = {
    "angry": [
        "I can't believe {person} {angry_verb} my {object} again!",
        "This is {angry_adj}, nobody ever listens to me about the {event}!",
        "How dare you take my {object} without asking!",
        "I am furious that the {event} was cancelled on {day} again!",
        "Stop lying to me about the {object}, I am sick of it!",
        "It is {angry_adj} that {person} kept me waiting at {place} for hours!",
        "Get out of my way, I have had enough of this {event}!",
        "Who the hell {angry_verb} the {object} and left it like that?",
        "I told you a hundred times to stay away from my {object}!",
        "That is the most {angry_adj} excuse I have ever heard!",
    ],
    "happy": [
        "I am so {happy_adj} that {good_news}!",
        "What a wonderful surprise, {person} came to the {event}!",
        "This is the best {event} I have ever had, thank you so much!",
        "I love my new {object}, it makes me so {happy_adj}!",
        "Hooray, {good_news}, let's celebrate tonight!",
        "I can't stop smiling since {person} called me on {day}!",
        "We did it, {good_news}, this is amazing!",
        "It is such a beautiful day to meet {person} at {place}!",
        "I am {happy_adj} to see you, you look fantastic!",
        "Best news ever, {good_news}!",
    ],
    "sad": [
        "I miss {person} so much since {loss}.",
        "Nothing feels the same since {loss}.",
        "I feel so {sad_adj} when I look at the old {object}.",
        "I wish {person} had stayed a little longer.",
        "Everything reminds me of the {event} we never had.",
        "I cried all night after {loss}.",
        "I don't think I will ever feel happy again after {loss}.",
        "It hurts to walk past {place} without {person}.",
        "I am so {sad_adj}, nobody came to the {event}.",
        "I keep the {object} because it is all I have left of {person}.",
    ],
}

# Neutral wording: plain statements that carry no emotion.
NEUTRAL_TEMPLATES: list[str] = [
    "The {object} is next to the window in {room}.",
    "The {event} starts at {time} on {day}.",
    "{Person} will drive to {place} on {day}.",
    "We need {count} {items} for the {event}.",
    "The bus to {place} leaves at {time}.",
    "Please put the {object} in {room}.",
    "{Person} moved the {items} to {room} this morning.",
    "The {event} has been moved to {day} at {time}.",
    "I read that {place} opens at {time} on {day}.",
    "There are {count} {items} on the shelf in {room}.",
    "{Person} bought a new {object} last {day}.",
    "The {object} was delivered to {place} on {day}.",
]

LABELS = ("angry", "happy", "sad", "neutral")


def fill(template: str, rng: random.Random) -> str:
    """Fill each ``{slot}`` (``{Slot}`` capitalises) with a random word from its list."""

    def pick(match: re.Match) -> str:
        name = match.group(1)
        word = rng.choice(SLOTS[name.lower()])
        return word[0].upper() + word[1:] if name[0].isupper() else word

    return re.sub(r"\{(\w+)\}", pick, template)


def sentence(wording: str, rng: random.Random) -> tuple[str, str]:
    """A sentence with ``wording`` (an emotion label or "neutral") -> (text, template id)."""
    templates = NEUTRAL_TEMPLATES if wording == "neutral" else EMOTION_TEMPLATES[wording]
    k = rng.randrange(len(templates))
    return fill(templates[k], rng), f"{wording}-{k:02d}"


# The held-out set's sentences (``raymer corpus synth --voices heldout``): written apart from
# the templates above, with other words, and kept out of every default choice, so a figure
# measured on them says how raymer does on sentences it was not tuned on.
HELDOUT_SENTENCES: dict[str, list[str]] = {
    "angry": [
        "Who gave you permission to throw away my paintings?",
        "You promised the repairs would be finished, and the roof still leaks.",
        "Stop interrupting me every single time I try to explain.",
        "They charged my card twice and now refuse to refund it.",
        "I have had enough of your excuses about the missing invoices.",
        "How dare they cancel the concert an hour before it began?",
        "This is the fourth time the plumber has not shown up.",
        "Get your muddy boots off the new carpet right now.",
        "Somebody scratched my door and drove off without a word.",
        "The council ignored every complaint, and frankly I am livid.",
    ],
    "happy": [
        "We finally adopted the puppy we visited last spring!",
        "My daughter took her first steps this afternoon.",
        "The orchestra accepted my application, I can hardly believe it.",
        "Our little bakery sold out before lunch again today.",
        "What a wonderful surprise to find you waiting at the gate.",
        "I passed the pilot exam on my very first attempt.",
        "The whole family is flying over for the wedding in June.",
        "Grandpa laughed so hard at the puppet show yesterday.",
        "We won the quiz night by a single point!",
        "The tomatoes in the greenhouse are finally ripening.",
    ],
    "sad": [
        "The old lighthouse keeper passed away over the winter.",
        "Nobody answered the letters she wrote from the hospital.",
        "Our dog is too weak now to climb the stairs.",
        "The village school closed for good after ninety years.",
        "I never got the chance to say goodbye to my uncle.",
        "The orchard we planted together was cut down last month.",
        "She sat alone on the bench where they used to meet.",
        "My best friend is moving to another continent next week.",
        "The photographs were all lost in the flood.",
        "He still sets two cups on the table every morning.",
    ],
    "neutral": [
        "The ferry crosses the river every forty minutes.",
        "Insert the blue cable into the second socket from the left.",
        "The committee meets on the first Tuesday of each month.",
        "Visitors should collect their badges at the front desk.",
        "The parcel weighs just under three kilograms.",
        "Water boils at a lower temperature in the mountains.",
        "The exhibition covers the history of printing in Europe.",
        "Turn left after the bridge and follow the signs for the ferry.",
        "The survey asks about travel habits and commuting times.",
        "Spare batteries are stored in the drawer beneath the printer.",
        "The library will extend its opening hours during the exams.",
        "Each volunteer receives a map and a list of addresses.",
    ],
}
