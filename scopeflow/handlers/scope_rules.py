"""Lines of a features list that are not plain features: rules, and features asked for by a role.

People put everything they want under "Must have": "appointments can't be booked in the past" is
a rule about data (a constraint, not a screen), and "receptionists can book, move and cancel
appointments" or "As a librarian, I want to lend books" name who may do something. The offline
templates build no such role (only the roles recipe does, for "only X can …"), so the analyst
marks those features ``assumed`` and says so instead of delivering them as asked.
"""

from __future__ import annotations

import re

from scopeflow.handlers import naming

_RULE = re.compile(
    r"\b(?:can't|cannot|can not|must not|mustn't|may not|should not|shouldn't|never|not allowed|"
    r"no (?:more|fewer|less) than|at most|at least|up to \d+|must be (?!able)|has to be|have to be|"
    r"is not possible|are not possible|impossible to|only (?:one|once|if|when|after|before))\b",
    re.IGNORECASE)
_ABILITY = re.compile(r"\b(?:must|should|need to|needs to)\s+be\s+able\s+to\b", re.IGNORECASE)
_ROLE_CAN = re.compile(r"^\s*(?:the\s+|our\s+)?(?P<who>[a-z][a-z-]+s)\s+(?:can|may|should be able to|"
                       r"are able to|must be able to|need to be able to|want to)\b", re.IGNORECASE)
_USER_STORY = re.compile(r"^\s*as\s+(?:an?|the)\s+(?P<who>[a-z][\w -]*?)\s*,?\s+i\s+(?:want|need|would like|can)\b",
                         re.IGNORECASE)
_EVERYONE = {"user", "users", "people", "everyone", "anyone", "visitor", "visitors", "guest", "guests", "we",
             "you", "they", "i", "customer", "customers", "member", "members", "person", "somebody",
             "someone", "client", "clients", "logged-in", "signed-in"}


def is_rule(text: str) -> bool:
    """A line that restricts data or actions (``… can't be booked in the past``), not a feature."""
    return bool(_RULE.search(text)) and not _ABILITY.search(text)


def role_of(text: str, entity_keys: set[str]) -> str | None:
    """The role a feature line names (``receptionists can …``, ``As a librarian, I want …``), unless
    it is everyone, an entity of the scope, or an ``only X can`` line (the roles recipe reads those)."""
    match = _USER_STORY.match(text) or _ROLE_CAN.match(text)
    if match is None or re.search(r"\bonly\b", text, re.IGNORECASE):
        return None
    who = match["who"].strip().lower()
    key = naming.lookup_key(who)
    if who in _EVERYONE or naming.singular(who) in _EVERYONE or key in entity_keys:
        return None
    return naming.singular(who.split()[-1])


def role_assumption(role: str) -> str:
    return (f"built for every user of the app: it has no {role} role, so anyone who can use the app can do "
            "this")
