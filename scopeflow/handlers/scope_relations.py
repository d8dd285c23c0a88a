"""Relations written as sentences: "Each pet belongs to an owner", "An appointment is for one pet",
"An author has many books", "A project can have several tasks".

Scopes written by people often list the entities and then say in words how they hang together.
Each such sentence makes the child entity refer to its parent: a field of the child named like
the parent (``owner`` in ``Pet: name, owner``) becomes the reference, otherwise a reference field
is added. A sentence naming an entity the scope does not define relates nothing (and stays for
the analyst to report as not understood).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scopeflow.handlers import naming
from scopeflow.handlers.scope_entities import _RawEntity, _RawField

_DET = (r"(?:(?:each|every|an?|one|the|any|exactly one|a single|one single|single|its|their|jede[srn]?|einen?|"
        r"einem|einer|cada|una?|chaque|une?)\s+)?")
_NOUN = r"[A-Za-z][\w-]*"
_CHILD_FIRST = re.compile(
    rf"\b{_DET}(?P<child>{_NOUN})\s+(?:(?:always|must|should|can only|only)\s+)?(?:belongs?\s+to|is\s+for|are\s+for|"
    rf"is\s+owned\s+by|are\s+owned\s+by|is\s+linked\s+to|is\s+attached\s+to|refers?\s+to|references|is\s+part\s+of|"
    rf"is\s+assigned\s+to|(?:be\s+)?(?:booked|made|placed|written|created|logged|filed)\s+(?:for|by|on|under)|"
    rf"(?:is|are)\s+[a-z]+ed\s+(?:by|to|for)|geh(?:ö|oe)rt\s+zu|pertenece\s+a|appartient\s+(?:à|a)|goes\s+with|is\s+about|has\s+(?:one|a|an|exactly\s+one|a\s+single)|has\s+one|needs\s+(?:an?|one))\s+"
    rf"{_DET}(?P<parent>{_NOUN})", re.IGNORECASE)
_PARENT_FIRST = re.compile(
    rf"\b{_DET}(?P<parent>{_NOUN})\s+(?:has|have|can\s+have|may\s+have|owns?|contains?|holds?|gets?|includes?|"
    rf"can\s+(?:book|make|write|place|create|log|add|own))\s+(?:many|several|multiple|zero\s+or\s+more|"
    rf"one\s+or\s+more|any\s+number\s+of|lots\s+of|a\s+list\s+of|some|various)\s+(?P<child>{_NOUN})", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


@dataclass
class Relation:
    """One sentence saying ``child`` refers to ``parent`` (labels as written)."""

    child: str
    parent: str
    line: int
    sentence: str


def sentences(text: str) -> list[str]:
    """``text`` split after ``.``, ``!``, ``?`` and ``;``."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def read_relation(sentence: str, line: int, known: set[str]) -> Relation | None:
    """The relation ``sentence`` states between two ``known`` entities (lookup keys), or None."""
    for pattern in (_CHILD_FIRST, _PARENT_FIRST):
        for match in pattern.finditer(sentence):
            child, parent = naming.lookup_key(match["child"]), naming.lookup_key(match["parent"])
            if child in known and parent in known and child != parent:
                return Relation(match["child"], match["parent"], line, sentence)
    return None


def relation_lines(blocks_text: list[tuple[int, str]], known: set[str]) -> tuple[list[Relation], set[int]]:
    """The relations of lines made only of relation sentences, and those lines (the reader skips them)."""
    found: list[Relation] = []
    lines: set[int] = set()
    for line, text in blocks_text:
        read = [read_relation(s, line, known) for s in sentences(text)]
        if read and all(r is not None for r in read):
            found.extend(r for r in read if r is not None)
            lines.add(line)
    return found, lines


def apply_relations(raws: list[_RawEntity], relations: list[Relation]) -> None:
    """Make each child refer to its parent: the child's field named like the parent, else a new field
    (written on the relation's line; the analyst adds a relation requirement for the sentence)."""
    by_key = {naming.lookup_key(raw.label): raw for raw in raws}
    for relation in relations:
        child = by_key.get(naming.lookup_key(relation.child))
        parent = by_key.get(naming.lookup_key(relation.parent))
        if child is None or parent is None:
            continue
        key = naming.lookup_key(parent.label)
        named = next((f for f in child.fields if naming.lookup_key(f.label) == key), None)
        if named is None:
            child.fields.append(_RawField(parent.label.lower(), ["-> " + parent.label], relation.line,
                                          sentence=relation.sentence))
            continue
        if not any(p.lstrip().startswith(("->", "→")) for p in named.pieces):
            named.pieces.insert(0, "-> " + parent.label)
