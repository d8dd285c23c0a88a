"""Entities and fields mined from prose, for scopes that have no entities section.

Sentences about what users do are read for the data they name: ``users can create projects with
a name and a deadline``, ``members sign up with name, email and membership type (day pass,
monthly, yearly)``, ``we log each visit with the member and the date``, ``for each patient we
store …``, ``also an expiry date on the membership`` (a field for the entity that holds
memberships). Everything mined is a guess: the analyst records it as ``assumed``, with the
sentence it came from.
"""

from __future__ import annotations

import re

from scopeflow.handlers import naming
from scopeflow.handlers.scope_entities import (
    _MODIFIER_WORDS,
    TYPE_SYNONYMS,
    _norm,
    _parse_field_item,
    _RawEntity,
    _RawField,
)

_VERB = (r"(?:create|add|make|manage|track|keep|store|record|log|post|write|publish|organi[sz]e|save|"
         r"schedule|list|enter|register|submit|maintain|catalog(?:ue)?|collect|plan|book|rate|review|"
         r"upload|share|edit)")
_DET = r"(?:(?:a|an|the|their|his|her|its|our|new|own|some|many|multiple|several|different)\s+)*"
_NOUN = r"[a-z][a-z0-9-]*"
_WITH_FIELDS = re.compile(rf"\b{_VERB}\s+{_DET}(?P<noun>{_NOUN})\s+(?:with|having|that have|which have|"
                          rf"containing|including)\s+(?P<fields>[^.;!?]+)", re.IGNORECASE)
_EACH_HAS = re.compile(rf"\b(?:each|every|an?|the)\s+(?P<noun>{_NOUN})\s+(?:has|have|gets|contains|includes|"
                       rf"stores|records|needs|consists of)\s+(?P<fields>[^.;!?]+)", re.IGNORECASE)
# ``for each patient we store their name, …``
_FOR_EACH = re.compile(rf"\b(?:for|of|about)\s+(?:each|every)\s+(?P<noun>{_NOUN})\s*,?\s+(?:we|they|you|staff|"
                       rf"the app|it|i)\s+(?:\w+\s+)?(?:store|keep|record|track|need|want|save|note|collect)s?\s+"
                       rf"(?P<fields>[^.;!?]+)", re.IGNORECASE)
_VERB_PLURAL = re.compile(rf"\b{_VERB}\s+{_DET}(?P<noun>{_NOUN}s)\b", re.IGNORECASE)
_CHILD_TO_PARENT = re.compile(rf"\b(?:add|attach|assign|put|link|post|log|record|create|file)\s+{_DET}"
                              rf"(?P<child>{_NOUN})\s+(?:to|for|on|under|in|into)\s+{_DET}(?P<parent>{_NOUN})",
                              re.IGNORECASE)
# ``Patients book appointments``: both already entities → an appointment refers to its patient
_SUBJECT_VERB_OBJECT = re.compile(rf"\b(?P<parent>{_NOUN}s)\s+(?:can\s+)?(?:book|make|create|place|write|own|"
                                  rf"have|submit|open|add|schedule|post)\s+{_DET}(?P<child>{_NOUN}s)\b",
                                  re.IGNORECASE)
_BELONGS_TO = re.compile(rf"\b(?P<child>{_NOUN})\s+belongs?\s+to\s+{_DET}(?P<parent>{_NOUN})", re.IGNORECASE)
_NOT_ENTITIES = {
    "in", "out", "it", "them", "thing", "stuff", "data", "information", "info", "app", "application",
    "account", "password", "change", "time", "way", "sure", "everything", "anything", "something",
    "this", "that", "one", "login", "page", "screen", "button", "form", "status", "progress", "news",
    "user", "person", "admin", "visitor", "everyone", "report", "export", "search", "csv",
}
_CLAUSE_STARTS = {"can", "could", "should", "will", "may", "must", "also", "then", "which", "that", "who",
                  "so", "but", "when", "where", "while", "to"}
_FIELD_DETERMINERS = {"a", "an", "the", "their", "its", "his", "her", "some", "each", "one", "own", "any",
                      "our", "your", "his/her"}


def _split_prose_list(text: str) -> list[str]:
    """Split ``a, b and c (x, y or z)`` at commas, ``and``, ``or``, ``plus``, ``&`` outside parentheses."""
    parts, depth, start = [], 0, 0
    pattern = re.compile(r"[()]|,|&|\b(?:and|or|plus)\b", re.IGNORECASE)
    for match in pattern.finditer(text):
        token = match.group(0)
        if token in "()":
            depth = depth + 1 if token == "(" else max(0, depth - 1)
        elif depth == 0:
            parts.append(text[start:match.start()])
            start = match.end()
    parts.append(text[start:])
    return parts


def _prose_choices(item: str) -> str:
    """``status (booked, cancelled or done)`` → ``status (one of booked | cancelled | done)``."""
    match = re.match(r"^(?P<name>[^()]+?)\s*\((?P<inner>[^()]+)\)$", item)
    if match is None:
        return item
    values = [v.strip() for v in re.split(r",|\bor\b|/|\|", match["inner"]) if v.strip()]
    if len(values) < 2 or any(_norm(v) in TYPE_SYNONYMS or v.split()[0].lower() in _MODIFIER_WORDS for v in values):
        return item
    return f"{match['name']} (one of {' | '.join(values)})"


def _mine_field_list(text: str, line: int = 0) -> list[_RawField]:
    """``a name and an optional deadline, and add tasks…`` → name, deadline (optional); stops at a
    new clause (a verb or modal) so the rest of the sentence does not become fields."""
    fields = []
    for item in _split_prose_list(text):
        words = _prose_choices(item.strip()).split()
        optional = False
        while words and words[0].lower() in _FIELD_DETERMINERS | {"optional"}:
            optional = optional or words.pop(0).lower() == "optional"
        if not words:
            continue
        first = words[0].lower()
        bare = [w for w in words if not w.startswith("(")] if "(" not in words[0] else words
        name_words = " ".join(words).split("(")[0].split()
        if re.fullmatch(_VERB, first, re.IGNORECASE) or first in _CLAUSE_STARTS or len(name_words) > 3 \
                or not bare:
            break
        raw = _parse_field_item(" ".join(words).strip(" ."), line)
        if raw is not None:
            fields.append(_RawField(raw.label, raw.pieces + (["optional"] if optional else []), line))
    return fields


def mine_prose(lines: list[tuple[int, str]]) -> tuple[list[_RawEntity], set[int]]:
    """Candidate entities (with fields and references) from sentences about what users do, and
    the lines they were read from."""
    raws: dict[str, _RawEntity] = {}
    used: set[int] = set()

    def entity(noun: str, line: int) -> _RawEntity | None:
        key = naming.lookup_key(noun)
        if not key or key in _NOT_ENTITIES:
            return None
        used.add(line)
        return raws.setdefault(key, _RawEntity(naming.singular(noun).capitalize(), line=line))

    sentences = [(line, s) for line, text in lines for s in re.split(r"(?<=[.!?;])\s+", text) if s.strip()]
    for line, sentence in sentences:
        for match in [*_WITH_FIELDS.finditer(sentence), *_EACH_HAS.finditer(sentence), *_FOR_EACH.finditer(sentence)]:
            if (found := entity(match["noun"], line)) is not None:
                found.fields.extend(_mine_field_list(match["fields"], line))
        for match in _VERB_PLURAL.finditer(sentence):
            entity(match["noun"], line)
    for line, sentence in sentences:
        both_known = [m for m in _SUBJECT_VERB_OBJECT.finditer(sentence)
                      if naming.lookup_key(m["child"]) in raws]
        for match in [*_CHILD_TO_PARENT.finditer(sentence), *_BELONGS_TO.finditer(sentence), *both_known]:
            parent_key = naming.lookup_key(match["parent"])
            if parent_key not in raws or (child := entity(match["child"], line)) is None \
                    or child is raws[parent_key]:
                continue
            parent = raws[parent_key]
            if not any(naming.lookup_key(f.label) == parent_key for f in child.fields):
                child.fields.append(_RawField(parent.label.lower(), ["-> " + parent.label], line))
    return list(raws.values()), used


