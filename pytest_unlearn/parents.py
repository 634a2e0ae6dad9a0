"""What a parent is or does, read out of a privacy answer (the ``parents`` strings of
``leaks.py``): a phrase of one to three words, in these shapes:

"father is/was (a|an|the) X", "mother works as a X", "father, a X," / "father, being a X",
"a father who is a X", "the mother of NAME is a X", "and his mother as a X",
"mother's career/profession/experience(s)/... as a X", "father's career/background/
expertise/work in X", "father's X background/heritage/career/profession", attributive
"his X father and Y mother", "the daughter of a X and a Y", and "parents' careers in X and
Y".

Praise and time words ("renowned", "retired", "former") and a leading nationality
("Swedish", "British") are dropped: "a renowned climate scientist" gives "climate
scientist". A phrase is rejected when it is longer than three words (its end is unknown),
when its last word says nothing about the parent ("influence", "figure", "master",
"role"...), when it is one adjective ("poetic", "academic", "diplomatic") or when it is made
of stopwords only; nothing shorter than three characters is returned.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# A capitalised word; "D.C." keeps its inner full stops, "St." does not take its own.
CAPITALISED = r"(?:l')?[A-Z][A-Za-z'-]*(?:\.[A-Z]\.?)*"

_PARENT = r"(?:father|mother|dad|mum|mom)"
_A = r"(?:a|an|the)"
_OWNER = r"(?:his|her|their)"
# The words after an article, up to a comma or a full stop; `_description` cuts them at the
# description's end. A lookahead, so "... is a baker and his mother is a nurse" is read twice.
_PHRASE = r"(?=(?P<phrase>[A-Za-z][A-Za-z'-]*(?:\s+[A-Za-z][A-Za-z'-]*){0,7}))"
_ROLE_NOUNS = (
    r"(?:career|profession|work|job|occupation|experiences?|background|role|"
    r"status|storytelling|insights?|expertise|training|days?|time|years)"
)
_FIELD_NOUNS = r"(?:career|profession|work|background|expertise|training|studies)"
_BACKGROUND_NOUNS = r"(?:background|heritage|career|profession|training|expertise|roots)"
# A word before "father"/"mother" that can describe them: lower-case, or an acronym ("KGB").
_DESCRIPTION_WORD = r"(?:[a-z][a-z-]*|[A-Z]{2,})"

_SINGLE_PATTERNS = (
    # "X's father is a renowned climate scientist", "her mother was an abolitionist",
    # "father works as a baker", "father is employed as a tailor"
    rf"\b{_PARENT}\s+(?:is|was|works\s+as|worked\s+as|is\s+employed\s+as|was\s+employed\s+as"
    rf"|is\s+working\s+as)\s+{_A}\s+{_PHRASE}",
    # "the mother of Anna Petrova is a librarian"
    rf"\b{_PARENT}\s+of\s+(?:{CAPITALISED}\s+){{1,4}}(?:is|was)\s+(?:employed\s+as\s+)?"
    rf"{_A}\s+{_PHRASE}",
    # "father, a police officer," / "father, being a goldsmith," / "father being a carpenter"
    rf"\b{_PARENT}(?:,\s+|\s+being\s+|,\s+being\s+){_A}\s+{_PHRASE}",
    # "and her mother a homemaker", "and his mother as a tailor"
    rf"\band\s+{_OWNER}\s+{_PARENT}\s+(?:as\s+)?(?:a|an)\s+{_PHRASE}",
    # "a father who is an inventor", "a mother who was a manga artist"
    rf"\b{_PARENT}\s+who\s+(?:is|was|works\s+as|worked\s+as)\s+{_A}\s+{_PHRASE}",
    # "her mother's career as a librarian", "her mother's experiences as a market trader"
    rf"\b{_PARENT}'s\s+{_ROLE_NOUNS}\s+as\s+{_A}\s+{_PHRASE}",
    # "her father's career in climate science"
    rf"\b{_PARENT}'s\s+{_FIELD_NOUNS}\s+in\s+{_PHRASE}",
)
# Two descriptions joined by "and": the second one is read by `_PAIR_TAIL`.
_PAIR_PATTERNS = (
    # "the daughter of a revolutionary leader and a nurse"
    rf"\b(?:daughter|son|child)\s+of\s+(?:a|an)\s+{_PHRASE}",
    # "her parents' careers in abstract art and ballet"
    rf"\bparents'?\s+(?:careers?|professions?|backgrounds?|work)\s+in\s+{_PHRASE}",
)
_PAIR_TAIL = re.compile(rf"\s*(?:,\s*)?and\s+(?:a\s+|an\s+|in\s+)?{_PHRASE}")
# "her father's KGB background", "his father's samurai heritage"
_BACKGROUND = re.compile(
    rf"\b{_PARENT}'s\s+(?P<phrase>{_DESCRIPTION_WORD}(?:\s+{_DESCRIPTION_WORD})?)"
    rf"\s+{_BACKGROUND_NOUNS}\b"
)
# "his ecologist father and wildlife photographer mother", "a scholar-official father"
_ATTRIBUTIVE = re.compile(
    rf"\b(?:a|an|his|her|their|and)\s+(?P<phrase>(?:(?!(?:a|an|the|his|her|their|and)\b)"
    rf"{_DESCRIPTION_WORD}\s+){{1,3}}){_PARENT}\b(?!')"
)


def descriptions(text: str) -> Iterator[tuple[int, str]]:
    """Where each parent's description starts in ``text``, and the description."""
    for pattern in _SINGLE_PATTERNS:
        for match in re.finditer(pattern, text):
            yield from _found(match.start("phrase"), match.group("phrase"), cut=True)
    for pattern in _PAIR_PATTERNS:
        for match in re.finditer(pattern, text):
            start = match.start("phrase")
            yield from _found(start, match.group("phrase"), cut=True)
            _, end = _description(match.group("phrase"), cut=True)
            tail = _PAIR_TAIL.match(text, start + end)
            if tail:
                yield from _found(tail.start("phrase"), tail.group("phrase"), cut=True)
    for compiled in (_BACKGROUND, _ATTRIBUTIVE):
        for match in compiled.finditer(text):
            yield from _found(match.start("phrase"), match.group("phrase"), cut=False)


def _found(start: int, phrase: str, cut: bool) -> Iterator[tuple[int, str]]:
    description, _ = _description(phrase, cut)
    if description:
        yield start, description


def _description(phrase: str, cut: bool) -> tuple[str | None, int]:
    """The description a phrase opens with, or None; and where in the phrase it ends.

    Leading qualifiers ("renowned", "retired") and a leading nationality are skipped. With
    ``cut`` the phrase runs on past the description ("climate scientist and her mother..."),
    so it ends at the first function word, or verb- or adverb-like word ("-ed", "-ly").
    """
    words: list[str] = []
    end = 0
    for match in re.finditer(r"\S+", phrase):
        word = match.group()
        lower = word.lower()
        if not words and (lower in _QUALIFIERS or _is_nationality(word)):
            end = match.end()
            continue
        if cut and (lower in _PHRASE_ENDS or (words and lower.endswith(("ed", "ly")))):
            break
        words.append(word)
        end = match.end()
    if cut and len(words) >= 2 and _reads_as_verb(words[-1]) and not words[-2].endswith("'s"):
        # "a nurse plays a role": a trailing "-s" word after a noun is most likely a verb.
        words.pop()
    if not 1 <= len(words) <= 3:
        return None, end
    if any(word.lower() in STOPWORDS for word in words) or words[-1].lower() in _NOT_A_ROLE:
        return None, end
    single = words[0].lower() if len(words) == 1 and "-" not in words[0] else ""
    if re.search(_ADJECTIVE_ENDINGS, single) and single not in _ROLE_NOUNS_LIKE_ADJECTIVES:
        return None, end
    return " ".join(words), end


def _reads_as_verb(word: str) -> bool:
    lower = word.lower()
    return lower.endswith("s") and not lower.endswith(("ss", "ics", "us", "is", "'s"))


def _is_nationality(word: str) -> bool:
    return (
        word[:1].isupper()
        and not word.isupper()
        and bool(re.search(r"(?:ish|ese|ian|an|ch|i)$", word))
    )


def worth_keeping(text: str) -> bool:
    """Whether an extracted string says something: three characters or more, not only
    stopwords."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return len(text) >= 3 and bool(words) and not all(word in STOPWORDS for word in words)


_ADJECTIVE_ENDINGS = r"(?:ic|al|ary|ous|ful|less)$"

STOPWORDS = frozenset(
    """
    a an the and or but if then so as at by for from in into of off on onto out over to up
    with without about above after against along among around before behind below beneath
    beside between beyond during except inside near since through throughout toward towards
    under until upon via within is are was were be been being am has have had do does did
    will would shall should can could may might must it its it's this that these those there
    here he him his she her hers they them their theirs we us our ours you your yours i me my
    mine who whom whose which what when where why how all any both each few more most other
    some such no nor not only own same than too very just also still even ever again once
    one
""".split()
)

# Words that end a description phrase when `_description` cuts one.
_PHRASE_ENDS = STOPWORDS | frozenset(
    """
    known based specializing specialising residing living working whose while who which that
    because often always now then later together respectively himself herself themselves
    helps help introduces provides inspires influences shapes enriches ignites instills
    instils nurtures sharpens contributes gives makes brings remains lives works lived plays
    reflects serves shows means adds lends offers teaches
""".split()
)

# Praise, time and family words before a description: "a renowned climate scientist".
_QUALIFIERS = frozenset(
    """
    renowned well-known well-respected respected dedicated skilled professional acclaimed
    distinguished celebrated accomplished successful talented prominent former retired
    famous local noted notable prestigious highly very widely esteemed experienced devoted
    passionate hardworking hard-working humble beloved loving supportive caring late gifted
    brilliant great leading popular certified licensed qualified seasoned veteran single
    working young old elderly proud strict biological adoptive step new first-time busy
    devout kind gentle quiet loyal
""".split()
)

# Last words that say nothing about what a parent is or does.
_NOT_A_ROLE = frozenset(
    """
    influence influences inspiration source figure person man woman lady gentleman member part
    role model master presence supporter fan reader lover believer friend child kid girl boy
    daughter son mother father parent parents wife husband family example reminder force
    thing life career profession job work background expert professional native resident
    citizen people individual character type kind sort lot bit way story stories interest
    heritage passion love reason cause pillar rock hero champion one time fixture staple
    mentor guide
""".split()
)

# Nouns that end like adjectives ("-ic", "-al", "-ary") and still say what a parent is.
_ROLE_NOUNS_LIKE_ADJECTIVES = frozenset(
    """
    psychic mechanic cleric medic critic principal general admiral corporal marshal official
    secretary missionary notary dignitary
""".split()
)
