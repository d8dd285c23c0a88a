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
from dataclasses import dataclass, field

from scopeflow.handlers import naming
from scopeflow.handlers.scope_entities import (
    _MODIFIER_WORDS,
    TYPE_SYNONYMS,
    _norm,
    _parse_field_item,
    _RawEntity,
    _RawField,
)
from scopeflow.handlers.scope_relations import apply_relations, read_relation

_VERB = (r"(?:create|add|make|manage|track|keep|store|record|log|post|write|publish|organi[sz]e|save|"
         r"schedule|list|enter|register|submit|maintain|catalog(?:ue)?|collect|plan|book|rate|review|"
         r"upload|share|edit|offer|sell|lend|rent)")
_DET = r"(?:(?:a|an|the|their|his|her|its|our|new|own|some|many|multiple|several|different|each|every)\s+)*"
_NOUN = r"[a-z][a-z0-9-]*"
_WITH_FIELDS = re.compile(rf"\b{_VERB}\s+{_DET}(?:{_NOUN}\s+(?=\w+\s+with\b))?(?P<noun>{_NOUN})\s+"
                          rf"(?:with|having|that have|which have|"
                          rf"containing|including)\s+(?P<fields>[^.;!?]+)", re.IGNORECASE)
_EACH_HAS = re.compile(rf"\b(?:each|every|an?|the)\s+(?P<noun>{_NOUN})\s+(?:has|have|gets|contains|includes|"
                       rf"stores|records|needs|consists of)\s+(?P<fields>[^.;!?]+)", re.IGNORECASE)
# ``for each patient we store their name, …``
_FOR_EACH = re.compile(rf"\b(?:for|of|about)\s+(?:each|every)\s+(?P<noun>{_NOUN})\s*,?\s+(?:we|they|you|staff|"
                       rf"the app|it|i)\s+(?:\w+\s+)?(?:store|keep|record|track|need|want|save|note|collect)s?\s+"
                       rf"(?P<fields>[^.;!?]+)", re.IGNORECASE)
# Gherkin's ``Given a gardener with a name and an email`` (or ``And …``): the step's subject is the entity
_GIVEN_WITH = re.compile(rf"^\s*(?:given|and)\s+(?:there\s+(?:is|are)\s+)?(?:a|an|some)\s+(?P<noun>{_NOUN})\s+"
                         rf"(?:with|having)\s+(?P<fields>[^.;!?]+)", re.IGNORECASE)
# ``members sign up with name, email and …``: the subject is the entity
_SUBJECT_WITH = re.compile(rf"\b(?P<noun>{_NOUN}s)\s+(?:sign\s+up|signs\s+up|register|enrol+|join|check\s+in|"
                           rf"are\s+(?:registered|added|entered|signed\s+up|stored|recorded))\s+with\s+"
                           rf"(?P<fields>[^.;!?]+)", re.IGNORECASE)
# ``also an expiry date on the membership``: one more field, for the entity that holds the noun
_ALSO_FIELD = re.compile(rf"^\s*(?:also|and|plus|oh and|ps)?[\s,:]*(?:we\s+(?:also\s+)?need\s+|add\s+)?"
                         rf"(?:an?|the|one)\s+(?P<field>[a-z][a-z ]{{0,30}}?)\s+(?:on|for|to|of|in)\s+"
                         rf"(?:the|each|every|a|an)\s+(?P<noun>{_NOUN})\s*[.!]?\s*$", re.IGNORECASE)
# words that are each a whole field: ``name email`` (a list written without commas) is two fields
_FIELD_WORDS = {"name", "email", "phone", "address", "age", "birthday", "photo", "notes", "price", "title",
                "description", "date", "status", "company", "city", "country", "website", "gender", "nickname",
                "username", "avatar", "bio", "comments", "rating", "mobile", "category", "colour", "color", "size"}
_COMPOUNDS = {"email address", "phone number", "mobile number", "birth date", "date time", "company name",
              "company address", "website address"}
_VERB_PLURAL = re.compile(rf"\b{_VERB}\s+{_DET}(?P<noun>{_NOUN}s)\b", re.IGNORECASE)
_CHILD_TO_PARENT = re.compile(rf"\b(?:add|attach|assign|put|link|post|log|record|create|file)\s+{_DET}"
                              rf"(?P<child>{_NOUN})\s+(?:to|for|on|under|in|into)\s+{_DET}(?P<parent>{_NOUN})",
                              re.IGNORECASE)
# ``Patients book appointments``: both already entities → an appointment refers to its patient
_SUBJECT_VERB_OBJECT = re.compile(rf"\b(?P<parent>{_NOUN}s)\s+(?:can\s+)?(?:book|make|create|place|write|own|"
                                  rf"have|submit|open|add|schedule|post)\s+{_DET}(?P<child>{_NOUN}s)\b",
                                  re.IGNORECASE)
# ``we keep our members (name, voice part, phone) and our concerts (date, venue)``: a plural noun with its
# field list in parentheses, in a sentence that says the data is kept
_PLURAL_PAREN = re.compile(rf"\b(?P<noun>{_NOUN}s)\s*\((?P<fields>[^()]*,[^()]*)\)", re.IGNORECASE)
# ``Guardamos los socios con nombre, correo y fecha``, ``Wir speichern Mitglieder mit Name und E-Mail``: the
# same sentence in Spanish, German and French (a verb of keeping, the noun, ``con``/``mit``/``avec`` fields)
_FOREIGN_WITH = re.compile(
    r"\b(?:guardamos|registramos|almacenamos|gestionamos|llevamos|speichern|erfassen|verwalten|"
    r"gardons|enregistrons|stockons|conservons)(?:\s+(?:wir|nous))?\s+(?:(?:los|las|el|la|unos|unas|die|der|das|den|alle|unsere|"
    r"les|des|nos)\s+)?(?P<noun>[^\W\d_][\w-]*)\s+(?:con|mit|avec)\s+(?P<fields>[^.;!?]+)", re.IGNORECASE)
_FOREIGN_LIST = re.compile(r"\s+(?:y|e|o|und|oder|et|ou)\s+", re.IGNORECASE)
_FOREIGN_DETERMINERS = re.compile(r"(?:^|(?<=,))\s*(?:el|la|los|las|un|una|su|sus|der|die|das|den|ein|eine|einen|"
                                  r"ihr|ihre|seine|le|les|un|une|son|sa|ses|leur)\s+", re.IGNORECASE)
_BELONGS_TO = re.compile(rf"\b(?P<child>{_NOUN})\s+belongs?\s+to\s+{_DET}(?P<parent>{_NOUN})", re.IGNORECASE)
_NOT_ENTITIES = {
    "in", "out", "it", "them", "thing", "stuff", "data", "information", "info", "app", "application",
    "account", "password", "change", "time", "way", "sure", "everything", "anything", "something",
    "this", "that", "one", "login", "page", "screen", "button", "form", "status", "progress", "news",
    "user", "person", "admin", "visitor", "everyone", "report", "export", "search", "csv",
}
# words ending in ``s`` that are no plural noun: ``book is on the shelf`` (``book`` is also a verb)
_NOT_PLURALS = {"is", "was", "has", "does", "as", "us", "its", "this", "thus", "yes", "plus", "less", "always",
                "perhaps", "sometimes", "across", "whereas", "unless", "besides"}
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
    """``status (booked, cancelled or done)`` → ``status (one of booked | cancelled | done)``;
    ``voice part soprano/alto/bass`` (values after the name, slash-separated) → ``voice part (one of …)``."""
    slashed = re.match(r"^(?P<name>[^()/]*[^\W\d_][^()/]*?)\s+(?P<values>[\w-]+(?:\s*/\s*[\w-]+)+)$", item)
    if slashed is not None and _norm(slashed["values"]) not in TYPE_SYNONYMS:
        values = [v.strip() for v in slashed["values"].split("/")]
        return f"{slashed['name']} (one of {' | '.join(values)})"
    match = re.match(r"^(?P<name>[^()]+?)\s*\((?P<inner>[^()]+)\)$", item)
    if match is None:
        return item
    values = [v.strip() for v in re.split(r",|\bor\b|/|\|", match["inner"]) if v.strip()]
    if len(values) < 2 or any(_norm(v) in TYPE_SYNONYMS or v.split()[0].lower() in _MODIFIER_WORDS for v in values):
        return item
    return f"{match['name']} (one of {' | '.join(values)})"


def _field_words(item: str) -> list[str]:
    """``name email`` → ``name``, ``email``: several words that are each a field; else the item."""
    words = item.split()
    pairs = {f"{a} {b}".lower() for a, b in zip(words, words[1:], strict=False)}
    if len(words) > 1 and "(" not in item and all(w.lower() in _FIELD_WORDS for w in words) \
            and not pairs & _COMPOUNDS:
        return words
    return [item]


def _mine_field_list(text: str, line: int = 0) -> list[_RawField]:
    """``a name and an optional deadline, and add tasks…`` → name, deadline (optional); stops at a
    new clause (a verb or modal) so the rest of the sentence does not become fields."""
    fields = []
    items = [word for item in _split_prose_list(text) for word in _field_words(item)]
    for item in items:
        words = _prose_choices(item.strip()).split()
        optional, determined = False, False
        while words and words[0].lower() in _FIELD_DETERMINERS | {"optional"}:
            determined = True
            optional = optional or words.pop(0).lower() == "optional"
        if not words:
            continue
        clause = next((n for n, w in enumerate(words[1:], 1) if w.lower() in _CLAUSE_STARTS | {"because", "if"}), None)
        if clause is not None and "(" not in " ".join(words[:clause]) + words[clause]:
            words = words[:clause]      # ``an ISBN so that patrons can find them``: the clause is no field
        first = words[0].lower()
        bare = [w for w in words if not w.startswith("(")] if "(" not in words[0] else words
        name_words = " ".join(words).split("(")[0].split()
        if len(name_words) > 3 and "in" in name_words[1:3]:     # ``a size in square metres``: the unit goes
            words = name_words = name_words[:name_words.index("in", 1)]
        if (re.fullmatch(_VERB, first, re.IGNORECASE) and not determined) or first in _CLAUSE_STARTS or len(name_words) > 3 \
                or not bare:
            break
        raw = _parse_field_item(" ".join(words).strip(" ."), line)
        if raw is not None:
            fields.append(_RawField(raw.label, raw.pieces + (["optional"] if optional else []), line))
    return fields


def mine_prose(lines: list[tuple[int, str]]) -> tuple[list[_RawEntity], set[int]]:
    """Candidate entities (with fields and references) from sentences about what users do, and
    the lines they were read from; each entity and field keeps the sentence it came from."""
    miner = _Miner()
    sentences = [(line, s) for line, text in lines for s in re.split(r"(?<=[.!?;])\s+", text) if s.strip()]
    for line, sentence in sentences:
        miner.entities_in(line, sentence)
    for line, sentence in sentences:
        miner.references_in(line, sentence)
        miner.added_field(line, sentence)
    return list(miner.raws.values()), miner.used


@dataclass
class _Miner:
    raws: dict[str, _RawEntity] = field(default_factory=dict)
    used: set[int] = field(default_factory=set)

    def entity(self, noun: str, line: int, sentence: str) -> _RawEntity | None:
        key = naming.lookup_key(noun)
        if not key or key in _NOT_ENTITIES or noun.lower() in _NOT_PLURALS:
            return None
        self.used.add(line)
        return self.raws.setdefault(key, _RawEntity(naming.singular(noun).capitalize(), line=line, sentence=sentence))

    def entities_in(self, line: int, sentence: str) -> None:
        for match in [*_WITH_FIELDS.finditer(sentence), *_SUBJECT_WITH.finditer(sentence),
                      *_EACH_HAS.finditer(sentence), *_FOR_EACH.finditer(sentence), *_GIVEN_WITH.finditer(sentence)]:
            if (found := self.entity(match["noun"], line, sentence)) is not None:
                found.fields.extend(_with_sentence(_mine_field_list(match["fields"], line), sentence))
        for match in _FOREIGN_WITH.finditer(sentence):
            if (found := self.entity(match["noun"], line, sentence)) is not None:
                fields = _FOREIGN_DETERMINERS.sub(" ", _FOREIGN_LIST.sub(", ", match["fields"]))
                found.fields.extend(_with_sentence(_mine_field_list(fields, line), sentence))
        if re.search(rf"\b{_VERB}\b", sentence, re.IGNORECASE):
            for match in _PLURAL_PAREN.finditer(sentence):
                if (found := self.entity(match["noun"], line, sentence)) is not None and not found.fields:
                    found.fields.extend(_with_sentence(_mine_field_list(match["fields"], line), sentence))
        for match in _VERB_PLURAL.finditer(sentence):
            self.entity(match["noun"], line, sentence)

    def references_in(self, line: int, sentence: str) -> None:
        if (relation := read_relation(sentence, line, set(self.raws))) is not None:
            apply_relations(list(self.raws.values()), [relation])
            self.used.add(line)
            return
        both_known = [m for m in _SUBJECT_VERB_OBJECT.finditer(sentence)
                      if naming.lookup_key(m["child"]) in self.raws]
        for match in [*_CHILD_TO_PARENT.finditer(sentence), *_BELONGS_TO.finditer(sentence), *both_known]:
            parent_key = naming.lookup_key(match["parent"])
            if parent_key not in self.raws or (child := self.entity(match["child"], line, sentence)) is None \
                    or child is self.raws[parent_key]:
                continue
            parent = self.raws[parent_key]
            if not any(naming.lookup_key(f.label) == parent_key for f in child.fields):
                child.fields.append(_RawField(parent.label.lower(), ["-> " + parent.label], line, sentence=sentence))

    def added_field(self, line: int, sentence: str) -> None:
        """``also an expiry date on the membership``: a field for the entity named, or for the one
        with a field about that noun (``membership type`` → Member gets ``membership expiry date``)."""
        match = _ALSO_FIELD.match(sentence)
        if match is None:
            return
        noun = naming.lookup_key(match["noun"])
        label = match["field"].strip()
        owner = self.raws.get(noun)
        if owner is None:
            owner = next((raw for raw in self.raws.values()
                          if any(noun in {naming.lookup_key(w) for w in f.label.split()} for f in raw.fields)), None)
            label = f"{match['noun']} {label}"
        if owner is None:
            return
        owner.fields.append(_RawField(label, [], line, sentence=sentence))
        self.used.add(line)


def _with_sentence(fields: list[_RawField], sentence: str) -> list[_RawField]:
    for item in fields:
        item.sentence = sentence
    return fields
