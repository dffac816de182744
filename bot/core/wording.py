"""How people write about the FAQ's subject: spelling folds, the subject, near misses.

The FAQ is about one subject, social (community) mobilization and the mobilizers who do it.
People name it in many ways: "mobilization", "mobiliser", "socl mobilizr", "परिचालन",
"परीचालक", "parichaalan", "prchln", "मोबिलाइजर". A message that names another subject and
never this one ("why is hand washing important", "strategies to win at chess") has the FAQ's
shape about something else, and the answer policy refuses it whatever the model says; one
that names no subject at all ("what are the steps?") is left to the model. Messages about
jobs, pay and allowances share the topics' words but are never FAQ questions.

`fold` makes one spelling of the variants people type (long and short Devanagari vowels,
xa / chha / cha, k / ke, v / bh) so the model sees one form in training and at parse time.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from bot.core.text import normalize

# Devanagari: long and short vowels and nasal marks are written either way in SMS.
_DEVANAGARI_FOLDS = str.maketrans(
    {
        "ी": "ि",
        "ू": "ु",
        "ई": "इ",
        "ऊ": "उ",
        "ँ": "ं",
        "ऋ": "रि",
        "श": "स",
        "ष": "स",
        "\u200c": None,
        "\u200d": None,
    }
)
_HALANT_DOUBLE = re.compile("त्त्व")  # महत्त्व / महत्व
_ROMAN_WORD = re.compile(r"[A-Za-z]+")

# Whole romanized words with one usual spelling (the first of each list).
_ROMAN_VARIANTS = {
    "chha": ("xa", "cha", "6a", "chaa", "chh"),
    "ke": ("k", "kay", "kee"),
    "ho": ("hoo",),
    "bhaneko": ("vaneko", "bhanya", "vanya", "bhanko", "bhnko", "vanek", "bhanek"),
    "bhanne": ("vanne", "bhane", "vane"),
    "hunchha": ("hunxa", "hunchh", "huncha", "hunx", "hunca"),
    "garchha": ("garxa", "garcha", "grxa"),
    "parchha": ("parxa", "parcha", "prxa", "parch"),
    "chhan": ("xan", "chan"),
    "kina": ("kin", "kn"),
    "samajik": ("saamaajik", "samajic", "smjk", "samajk", "sāmājik"),
    "samudayik": ("samudaik", "samudayek", "samudayic"),
    "mahatwapurna": ("mahatvapurna", "mahatvapurn", "mahatwapurn", "mahattwapurna"),
    "fayda": ("faida", "phayda", "phaida", "faeda"),
    "rananiti": ("rananeeti", "ranniti", "rananitee"),
    "bhumika": ("vumika", "bhumeka", "vhumika"),
    "bhitra": ("vitra",),
    "yo": ("yeo",),
}
_ROMAN_FOLDS = {
    variant: canon for canon, variants in _ROMAN_VARIANTS.items() for variant in variants
}

# The subject: stems of "mobilization / mobilizer" and "परिचालन / परिचालक" as people write them.
_SUBJECT_STEMS = ("mobiliz", "mobilis", "mobilz", "mobils", "mobli", "parichal", "parichaal",
                  "prichal", "parical", "prchl", "parichl")  # fmt: skip
_SUBJECT_DEVANAGARI = ("परिचाल", "मोबिलाइ", "मोबिलाई", "मोबलाइ", "मोबिलाज", "मोबिलिज")
# Words of the FAQ's world that are not its subject: "how to involve community leaders".
_DOMAIN_STEMS = ("communit", "samuda", "stakehold", "sarokar", "aguwa")
_DOMAIN_DEVANAGARI = ("समुदाय", "सामुदायिक", "सरोकार", "अगुवा")
_SUBJECT_SKELETONS = ("mblz", "mbls", "prchl")  # consonants only: "mblztn", "prchln"

# Jobs, pay and allowances: never a FAQ question, even with the subject in it.
_NEAR_MISS_WORDS = frozenset(
    {
        "salary", "salaries", "wage", "wages", "vacancy", "vacancies", "allowance",
        "allowances", "bhatta", "talab", "tankha", "pension", "recruitment",
        "तलब", "तलप", "भत्ता", "पारिश्रमिक", "तनखा", "विज्ञापन", "दरखास्त", "आवेदन",
        "रिक्त", "पेन्सन", "कमाइ",
        # Spellings people really type for the job, the pay, applying and hiring.
        "talap", "tlb", "tnkha", "bharna", "bharti",
        "aawedan", "awedan", "abedan", "aabedan", "aavedan", "avedan", "bhattaa",
        "salry", "sallary", "salery", "vacency", "vacancey", "allowence", "alowance",
        "qualification", "qualifications", "yogyata", "hiring", "darkhast", "darkhasta",
        "भर्ना", "भर्ती", "अबेदन", "आबेदन", "अवेदन", "योग्यता", "दरखास",
    }
)  # fmt: skip
_NEAR_MISS_PHRASES = ("apply for", "apply as", "apply to", "job vacancy", "how much pay",
                      "get paid", "kati pai", "kati paun", "kasari paune jagir",
                      "kati paisa", "कति पैसा", "how much money", "application form",
                      "job opening", "kaam khoj", "kam khoj", "काम खोज", "फाराम", "फारम",
                      "form bhar", "form kaha")  # fmt: skip
# Asking for a mobilizer's job rather than what the job is: "is there a job", "how to become
# a mobilizer" (but "how to become a GOOD mobilizer" asks for the qualities).
_NEAR_MISS_PATTERNS = re.compile(
    r"\b(is|are) (there|thr) (a |an |any )?(job|vacanc|opening|post)"
    r"|\bany (job|vacanc|opening)"
    r"|\b(get|find|need|want|got|looking for|search for) (a |an |any )?(job|work as)\b"
    r"|\b(want|like|wish|how) to (work|be|become|join) (as )?(a |an )?(social |community )?"
    r"(mobili|mobli|parichalak)"
    r"|\bbecome (a |an )?(social |community )?(mobili|mobli|parichalak)"
    r"|\bhow much (do|does|will|can|is)\b.*\b(earn|earns|paid|pay)\b"
    r"|\b(mobili\w*|parichalak) (pad ?ma |pad ko lagi |ko lagi |kasari )?(banna|banne|bannu)\b"
    r"|\b(job|jagir|jaagir|jageer|kaam|kam) (kasari |kaha |kahaa |kata |kasle )?"
    r"(paune|paaune|paincha|painchha|paiyo|khoj|khulyo|khulchha|chahiyo|dinchha)"
    r"|\b(jagir|jaagir|jageer)$"  # "mobilizer ko jagir": the job itself, nothing asked of it
    r"|परिचालक (पदमा |कसरि )?बन्न"  # no \b: a Devanagari vowel sign is not a word character
    r"|(जागिर|काम) (कसरि |कहां |कहा )?(पाउने|पाइन्छ|पाइयो|खोज|खुल्यो|चाहियो)"
    r"|जागिर$"
)
# Words that make "becoming a mobilizer" a question about qualities, not a job.
_GOOD_WORDS = frozenset({"good", "better", "best", "successful", "effective", "ideal", "asal",
                         "ramro", "safal", "असल", "राम्रो", "सफल", "qualities", "quality",
                         "skills", "gun", "गुण"})  # fmt: skip
_VOWELS = set("aeiouy")

# Feedback or a question? "What does the mobilizer in our ward do" asks; "complaint: the
# mobilizer never came" and "the mobilizer did not come to our village" tell. A message is
# feedback when it names feedback, or reports something that did not happen or went wrong.
_FEEDBACK_WORDS = frozenset(
    {
        "feedback", "complaint", "complaints", "complain", "complained", "suggestion",
        "suggestions", "suggest", "report", "rumour", "rumor", "opinion", "gunaso", "gunasho",
        "gunaaso", "ujuri", "ujur", "sujhav", "sujhab", "sujhaw", "sujhaav", "pratikriya",
        "halla", "गुनासो", "उजुरी", "सुझाव", "प्रतिक्रिया", "हल्ला", "राय",
    }
)  # fmt: skip
_WRONG_WORDS = frozenset(
    {
        "not", "never", "didnt", "didn", "doesnt", "doesn", "wont", "isnt", "no", "nobody",
        "nothing", "rude", "late", "absent", "bad", "worst", "problem", "problems", "issue",
        "broken", "angry", "unhappy", "satisfied", "useless", "stopped", "missing",
        "chaina", "xaina", "chhaina", "samasya", "bigreko", "bigryo", "naramro", "dhila", "ghus",
        "समस्या", "बिग्रिएको", "बिग्रियो", "नराम्रो", "ढिला", "घुस",
    }
)  # fmt: skip
# Nepali negatives end the verb: "aayenan", "bhayena", "gardainan", "आएनन्", "गर्दैनन्", "छैन".
_NEGATIVE_ENDINGS_ROMAN = ("ena", "enan", "yenan", "daina", "dainan", "dinan", "chhaina")
_NEGATIVE_ENDINGS_NE = ("एन", "एनन्", "दैन", "दैनन्", "छैन", "छैनन्", "एनौ", "न्न")
_QUESTION_TAGS = frozenset({"ki", "कि"})  # "aauchha ki aaudaina": "or not?", a question
_QUESTION_WORDS = frozenset(
    {
        "what", "whats", "wat", "who", "whom", "whose", "why", "how", "when", "where", "which",
        "ke", "kasari", "kina", "kahile", "kun", "kasle", "kaslai", "kasto", "kati", "hola", "ki",
        "के", "कसरि", "किन", "कहिले", "कुन", "कसले", "कसलाई", "कस्तो", "कति", "होला", "कि",
    }
)  # fmt: skip
# English yes/no questions open with the verb: "will a mobilizer come", not "he will come".
_QUESTION_OPENERS = frozenset(
    {"will", "would", "can", "could", "does", "do", "did", "is", "are", "should", "shall", "has"}
)
_QUESTION_PHRASES = ("ko ho", "ko hun", "को हो", "को हुन्")  # fmt: skip

# The FAQ questions' own shape: question and function words, the topics' words, politeness,
# in English, romanized Nepali and Devanagari. What is left of a message after these (and
# the subject) is another subject: "what are the steps" names none, "what are the steps to
# register a birth" names one.
_SHAPE_EN = """
a about actually all also an and any approach approaches are as at be been being best brief
by call called can characteristics could daily day define definition did do does doing done
dos donts dont duties duty each english exactly explain first for from gain gains get give
good he her him his how i important importance in include included includes involve involved
involves is it its job jobs just key kind know language list main make makes many matter
matters me mean meaning meanings means meant method methods more most much must my need
needed needs nepali next not of on or our ours part participate participates people person
please pls plz practice practices process procedure purpose qualities quality r really
responsibility responsibilities role roles say says she short should simple skills so social
some someone stage stages step steps strategies strategy take takes task tasks tell term
terms that the their them there these they thing things this those to traits translate
translation type u ur us use useful want was wat way ways we well wat what whats when where
village villages ward wards tole toles area areas place local here nepal country city town
start begin started starting
which who whom whose why will with word words work works would wht y you your benefit
benefits advantage advantages help helps community communities good bad do's don'ts
"""
_SHAPE_ROMAN = """
ke k ho hun hunchha hunchhan chha chhan ko ka le lai ma bata ra ni ta re kina kasari kun kasle
kasko kaslai haru yo tyo yesko yasko yeslai bhaneko bhanne bhanchha bhanchhan bhaninchha
bhanincha artha matlab paribhasa charan kadam gun gunharu fayda labh rananiti upaya mahatwa
mahatwapurna jaruri aawashyak awasyak chahinchha kaam kam bhumika jimmewari garchha garchhan
garne garnu gardachha parchha parne hunu samajik samudayik samudaya nepali angreji shabda
sahabhagi samlagna sabai ramro asal kasto kasta hajur ali bujhaunu bujhina bataunu bhannus
ko-ko k-k hunchha hola holan ekdam dherai kati pani nai ni chai chahi garda gari garera
sanga sangai vitra bhitra kasari gaun gau gaon palika nagarpalika jilla thau yaha hamro mero
hami hamilai malai timi tapai tapain suru
"""
_SHAPE_NE = """
के हो हुन् हुन्छ हुन्छन् छ छन् को का की ले लाई मा बाट र नि त किन कसरी कुन कसले कसको कसलाई
यो त्यो यसको यसलाई भनेको भन्ने भनिन्छ भन्छन् अर्थ मतलब परिभाषा चरण गुण फाइदा लाभ रणनीति उपाय
महत्त्व महत्त्वपूर्ण जरुरी आवश्यक चाहिन्छ काम भूमिका जिम्मेवारी गर्छ गर्छन् गर्ने गर्नु पर्छ पर्ने
हुनु सामाजिक सामुदायिक समुदाय नेपाली अंग्रेजी शब्द सहभागी संलग्न सबै राम्रो असल कस्तो कस्ता
हजुर अलि बुझाउनु बताउनु भन्नुस् हुन्छन होला धेरै पनि नै चाहिँ गर्दा गरेर सँग भित्र कृपया
गाउँ वडा टोल पालिका नगरपालिका गाउँपालिका जिल्ला ठाउँ यहाँ नेपाल हाम्रो मेरो हामी हामीलाई मलाई
तपाईं सुरु
"""


@lru_cache(maxsize=2048)  # pure; a turn folds the same body several times (see normalize)
def fold(text: str) -> str:
    """One spelling for the variants people type, for the model's features.

    Keeps the words' order, case and punctuation; folds Devanagari long/short vowels and
    sibilants, and romanized spellings of common Nepali words.

    >>> fold("Samajik Parichalan K xa?")
    'Samajik Parichalan ke chha?'
    >>> fold("सामाजिक परीचालन किन महत्त्वपूर्ण छ")
    'सामाजिक परिचालन किन महत्वपुर्ण छ'
    """
    text = unicodedata.normalize("NFC", text)
    text = _HALANT_DOUBLE.sub("त्व", text.translate(_DEVANAGARI_FOLDS))
    text = _ROMAN_WORD.sub(lambda m: _ROMAN_FOLDS.get(m.group(0).lower(), m.group(0)), text)
    return " ".join(text.split())


_SHAPE = frozenset(fold(w) for w in (_SHAPE_EN + _SHAPE_ROMAN + _SHAPE_NE).split())
# Devanagari case endings written joined to the word (after `fold`'s spelling).
_NE_ENDINGS = tuple(
    fold(e)
    for e in ("हरूको", "हरूले", "हरूलाई", "हरूमा", "हरू", "को", "का", "की", "ले", "लाई", "मा", "बाट", "ता")
)

_NEAR_MISS_FOLDED = frozenset(fold(word) for word in _NEAR_MISS_WORDS)
_GOOD_FOLDED = frozenset(fold(word) for word in _GOOD_WORDS)
_FEEDBACK_FOLDED = frozenset(fold(word) for word in _FEEDBACK_WORDS | _WRONG_WORDS)
_QUESTION_FOLDED = frozenset(fold(word) for word in _QUESTION_WORDS)


def _skeleton(word: str) -> str:
    return "".join(ch for ch in word if ch not in _VOWELS)


def mentions_subject(text: str) -> bool:
    """True when `text` names social/community mobilization or a mobilizer, in any script.

    >>> mentions_subject("wat dz a socl mobilizr do")
    True
    >>> mentions_subject("smjk prchln bhnko k ho")
    True
    >>> mentions_subject("why is hand washing important")
    False
    """
    folded = fold(normalize(text))
    if any(stem in folded for stem in _SUBJECT_DEVANAGARI):
        return True
    for word in folded.split():
        if not word.isascii() or len(word) < 4:
            continue
        if word.startswith(_SUBJECT_STEMS) or _skeleton(word).startswith(_SUBJECT_SKELETONS):
            return True
    return False


def mentions_domain(text: str) -> bool:
    """True when `text` has a word of the FAQ's world (community, stakeholders, leaders).

    >>> mentions_domain("samudaya ka aguwa lai kasari sanglagna garaune")
    True
    """
    folded = fold(normalize(text))
    if any(stem in folded for stem in _DOMAIN_DEVANAGARI):
        return True
    return any(word.startswith(_DOMAIN_STEMS) for word in folded.split())


def _forms(word: str) -> set[str]:
    """`word` and what is left of it after each Devanagari case ending is taken off."""
    forms = {word}
    while not word.isascii():
        ending = next((e for e in _NE_ENDINGS if word.endswith(e) and len(word) > len(e) + 1), "")
        if not ending:
            break
        word = word[: -len(ending)]
        forms.add(word)
    return forms


def other_words(text: str) -> list[str]:
    """The words of `text` that are neither the FAQ's shape nor its subject.

    >>> other_words("what are the steps to register a birth")
    ['register', 'birth']
    >>> other_words("सामाजिक परिचालनका चरणहरू के के हुन्?")
    []
    """
    out = []
    for word in fold(normalize(text)).split():
        if word.isdigit() or len(word) < 2 or mentions_subject(word):
            continue
        if not _forms(word) & _SHAPE:
            out.append(word)
    return out


def near_miss(text: str) -> bool:
    """True when `text` is about jobs, pay or allowances (never a FAQ question).

    >>> near_miss("what is the salary of a social mobilizer")
    True
    >>> near_miss("what does a social mobilizer do")
    False
    """
    folded = fold(normalize(text))
    words = set(folded.split())
    if any(_forms(word) & _NEAR_MISS_FOLDED for word in words):
        return True
    if any(phrase in folded for phrase in _NEAR_MISS_PHRASES):
        return True
    return bool(_NEAR_MISS_PATTERNS.search(folded)) and not words & _GOOD_FOLDED


def asks_not_tells(text: str) -> bool:
    """True when `text` is a question and not feedback: it asks (a question mark or a
    question word), names no feedback and reports nothing that did not happen or went wrong.

    >>> asks_not_tells("will a mobilizer come to our village?")
    True
    >>> asks_not_tells("the mobilizer did not come to our village, why?")
    False
    >>> asks_not_tells("I want to give feedback about the mobilizer in our village")
    False
    """
    folded = fold(normalize(text))
    words = folded.split()
    asks = "?" in text or any(word in _QUESTION_FOLDED for word in words)
    asks = asks or bool(words and words[0] in _QUESTION_OPENERS)
    if not asks and not any(phrase in folded for phrase in _QUESTION_PHRASES):
        return False
    for before, word in zip(["", *words], words, strict=False):
        if _forms(word) & _FEEDBACK_FOLDED:
            return False
        if before in _QUESTION_TAGS:
            continue
        if word.isascii() and word.endswith(_NEGATIVE_ENDINGS_ROMAN) and len(word) > 4:
            return False
        if not word.isascii() and word.endswith(_NEGATIVE_ENDINGS_NE):
            return False
    return True
