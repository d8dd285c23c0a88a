"""What a section of a scope is about, from the words of its heading or label.

People name the same section many ways: the data is "Entities", "What we track", "Objects",
"Records", "Tables", "Models" or "The app stores"; the features are "Features", "Must have",
"Nice to have", "User stories", "Wishlist" or "Acceptance criteria"; the constraints are "Rules",
"Business rules"; the integrations "Third party" or "External services". A heading is matched
by meaning (a keyword or phrase anywhere in it, in English, German, French or Spanish); a
one-word heading one or two typos away from a section name counts too (``Entites``, ``Featrues``).
"""

from __future__ import annotations

import difflib
import re

# Checked in this order, substring match on the lower-cased heading.
SECTION_KINDS = (
    ("entities", ("entit", "entidad", "data model", "datenmodell", "modèle", "modelo de datos", "model", "data",
                  "object", "objekt", "resource", "table", "record", "schema", "donnée", "datos", "daten",
                  "what we track", "we track", "to track", "we keep", "we store", "app stores", "app keeps",
                  "what we store", "what the app stores", "things we", "what we keep", "stored", "tracked",
                  "speicher", "gespeichert", "erfassen", "guardamos", "almacen", "registramos", "stockons",
                  "conservons", "enregistrons")),
    ("features", ("feature", "functionalit", "fonctionnalit", "funcionalidad", "funktion", "user stor",
                  "capabilit", "requirement", "stories", "exigence", "anforderung", "what it does",
                  "what the app does", "must do", "should do", "can do", "users can", "use case", "fonctions",
                  "must have", "must-have", "should have", "nice to have", "nice-to-have", "could have",
                  "wishlist", "wish list", "acceptance criteria", "scope of work", "deliverables", "wünsche", "deseos", "imprescindible")),
    ("integrations", ("integration", "intégration", "integración", "external", "third", "service",
                      "api key", "credential", "schnittstelle", "3rd party")),
    ("constraints", ("constraint", "contrainte", "restricci", "einschränk", "non-functional",
                     "non functional", "nfr", "rule", "limit", "policy", "regel", "règle", "regla",
                     "validation", "must not", "restriction")),
)
_NON_FUNCTIONAL = ("non-functional", "non functional", "nonfunctional", "nfr", "quality attribute",
                   "nicht-funktional", "nicht funktional", "no funcional", "non fonctionnel")
_TYPO_TARGETS = {"entities": "entities", "entity": "entities", "features": "features", "feature": "features",
                 "integrations": "integrations", "constraints": "constraints", "rules": "constraints",
                 "requirements": "features", "stories": "features"}


def section_kind(heading: str) -> str:
    """``entities``, ``features``, ``integrations``, ``constraints`` or ``prose`` for a heading/label."""
    lowered = " ".join(heading.lower().strip(" :*#_").replace("’", "'").split())
    if any(key in lowered for key in _NON_FUNCTIONAL):     # before "requirement" makes it a features heading
        return "constraints"
    for kind, keys in SECTION_KINDS:
        if any(key in lowered for key in keys):
            return kind
    words = lowered.split()
    if len(words) == 1:
        close = difflib.get_close_matches(words[0], list(_TYPO_TARGETS), n=1, cutoff=0.75)
        if close:
            return _TYPO_TARGETS[close[0]]
    return "prose"


_GREETING = re.compile(r"^(?:hi|hello|hey|dear|hallo|hola|bonjour|good (?:morning|afternoon))\b[^.!?]{0,40}[,!:]?$",
                       re.IGNORECASE)
_CLOSING = re.compile(r"^(?:thanks|thank you|many thanks|cheers|best|best wishes|regards|kind regards|"
                      r"best regards|warm regards|thx|ta|danke|gracias|merci)(?: (?:a lot|again|so much))?[,.!]?$",
                      re.IGNORECASE)
_SIGNATURE = re.compile(r"^[A-Z][\w'-]*(?: [A-Z][\w'-]*){0,2}$")


def letter_lines(lines: list[tuple[int, str]]) -> set[int]:
    """The greeting, closing and signature of a scope written as an e-mail (``Hi Sam,`` …
    ``Thanks,`` / ``Maria``): they are the letter's frame, not requirements."""
    found: set[int] = set()
    closed = False
    for number, text in lines:
        text = text.strip()
        if _GREETING.match(text) or _CLOSING.match(text):
            found.add(number)
            closed = closed or bool(_CLOSING.match(text))
        elif closed and _SIGNATURE.match(text):
            found.add(number)
    return found
