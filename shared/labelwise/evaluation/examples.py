"""Published examples of other classifier APIs that labelwise is held to (issue 11, section 4).

Kept in one place so that the wording study (``scripts/tune_zeroshot.py``) and the end-to-end tests
score the very same request.
"""

from __future__ import annotations

#: Jina's fact-vs-opinion example: a paragraph on the Space Race split at every ``.``, the labels
#: of Jina's request (model ``jina-embeddings-v3``), and Jina's published answer (label index per
#: sentence: 0 = the opinion label, 1 = ``fact``).
JINA_SENTENCES = (
    "The Space Race of the 1960s was a breathtaking testament to human ingenuity",
    "When the Soviet Union launched Sputnik 1 on October 4, 1957, it sent shockwaves through American "
    "society, marking the undeniable start of a new era",
    "The silvery beeping of that simple satellite struck fear into the hearts of millions, as if the very "
    "stars had betrayed Western dominance",
    "NASA was founded in 1958 as America's response, and they poured an astounding $28 billion into the "
    "Apollo program between 1960 and 1973",
    "While some cynics claimed this was a waste of resources, the technological breakthroughs were "
    "absolutely worth every penny spent",
    "On July 20, 1969, Neil Armstrong and Buzz Aldrin achieved the most magnificent triumph in human "
    "history by walking on the moon, their footprints marking humanity's destiny among the stars",
    "The Soviet space program, despite its early victories, ultimately couldn't match the superior "
    "American engineering and determination",
    "The moon landing was not just a victory for America - it represented the most inspiring moment in "
    "human civilization, proving that our species was meant to reach beyond our earthly cradle",
)
JINA_LABELS = ("subjective, opinion, feeling, personal experience, creative writing, position", "fact")
JINA_GOLD = (0, 1, 0, 1, 0, 1, 0, 1)
JINA_MODEL = "jina-embeddings-v3"

#: Cohere's classify documentation example: five spam and five other messages (text, label), the two
#: inputs, and Cohere's documented answer for them.
COHERE_SPAM_EXAMPLES = (
    ("Dermatologists don't like her!", "Spam"),
    ("Hello, open to this?", "Spam"),
    ("I need help please wire me $1000 right now", "Spam"),
    ("Nice to know you ;)", "Spam"),
    ("Please help me?", "Spam"),
    ("Your parcel will be delivered today", "Not spam"),
    ("Review changes to our Terms and Conditions", "Not spam"),
    ("Weekly sync notes", "Not spam"),
    ("Re: Follow up from today\u2019s meeting", "Not spam"),
    ("Pre-read for tomorrow", "Not spam"),
)
COHERE_SPAM_INPUTS = ("Confirm your email address", "hey i need u to send some $")
COHERE_SPAM_GOLD = ("Not spam", "Spam")
