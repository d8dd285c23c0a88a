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

# Checked in this order, substring match on the lower-cased heading.
SECTION_KINDS = (
    ("entities", ("entit", "entidad", "data model", "datenmodell", "modèle", "modelo de datos", "model", "data",
                  "object", "objekt", "resource", "table", "record", "schema", "donnée", "datos", "daten",
                  "what we track", "we track", "to track", "we keep", "we store", "app stores", "app keeps",
                  "what we store", "what the app stores", "things we", "what we keep", "stored", "tracked")),
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
_TYPO_TARGETS = {"entities": "entities", "entity": "entities", "features": "features", "feature": "features",
                 "integrations": "integrations", "constraints": "constraints", "rules": "constraints",
                 "requirements": "features", "stories": "features"}


def section_kind(heading: str) -> str:
    """``entities``, ``features``, ``integrations``, ``constraints`` or ``prose`` for a heading/label."""
    lowered = " ".join(heading.lower().strip(" :*#_").replace("’", "'").split())
    for kind, keys in SECTION_KINDS:
        if any(key in lowered for key in keys):
            return kind
    words = lowered.split()
    if len(words) == 1:
        close = difflib.get_close_matches(words[0], list(_TYPO_TARGETS), n=1, cutoff=0.75)
        if close:
            return _TYPO_TARGETS[close[0]]
    return "prose"
