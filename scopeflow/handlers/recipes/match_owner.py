"""Matcher of the ownership recipe: each signed-in user sees (or changes) only the rows they created.

``members can only see their own orders`` → ``private``: others' rows are hidden everywhere (404 on
their id); ``customers can edit only their own bookings`` → ``edit-own``: everyone reads, only the
creator changes (403). Ownership means "created by": the app records the signed-in user on each new
row. Lines about rows *assigned to* a user ("agents see tickets assigned to them") are a
:class:`Miss`, because nothing links a sign-in account to a row of a people entity.
"""

from __future__ import annotations

import re

from scopeflow.handlers import naming
from scopeflow.handlers.recipes.match_rules import match_roles
from scopeflow.handlers.recipes.model import Miss, Recipe
from scopeflow.handlers.recipes.reading import entity_in, words_of
from scopeflow.handlers.spec import Spec

OWNER_COLUMN = "owner_user_id"
_POSSESSIVE = r"(?:their|thier|theyre|his|her|his or her|his/her|her/his)"
_OWN = re.compile(rf"\b{_POSSESSIVE}\s+own\b(?:\s+(?P<what>[a-z]\w*))?", re.IGNORECASE)
_READ_VERBS = r"see|sees|seeing|view|views|viewing|access|accesses|read|reads|list|lists|browse|browses|look|looks"
_WRITE_VERBS = r"edit|edits|change|changes|update|updates|modify|modifies|delete|deletes|remove|removes|cancel|cancels"
_THEIR = re.compile(rf"\b(?P<verb>{_READ_VERBS}|{_WRITE_VERBS}|manage|manages)\s+(?:only\s+)?{_POSSESSIVE}\s+"
                    r"(?P<what>[a-z]\w*)", re.IGNORECASE)
_CREATED = re.compile(r"\b(?P<what>[a-z]\w*)\s+(?:that|which|who)?\s*(?:they|he|she|he or she)\s+(?:have\s+|has\s+)?"
                      r"(?:created|create|made|make|added|add|entered|submitted|posted|wrote|booked|placed|opened)\b",
                      re.IGNORECASE)
_ASSIGNED = re.compile(r"\b(?P<what>[a-z]\w*)\s+(?:(?:that|which)\s+(?:are|is)\s+)?assigned\s+to\s+"
                       r"(?:them|him|her|themselves|him or her)\b", re.IGNORECASE)
_CLAUSE_END = re.compile(r"[.;,:]|\bbut\b|\bwhile\b|\bwhereas\b", re.IGNORECASE)
_SEE_ALL = re.compile(r"\b(?P<who>[a-z][\w-]*)\s+(?:can\s+|may\s+)?(?:see|sees|view|views|access|manage|manages|"
                      r"read)\s+(?:all|every|everything|any)\b", re.IGNORECASE)
# Role names that stand for "the people who run the app": they see and change every row.
ADMIN_ROLES = frozenset({"admin", "administrator", "manager", "supervisor", "superuser", "owner"})


def _trigger(text: str) -> tuple[re.Match[str], str] | None:
    """The phrase that asks for ownership and which kind: ``own``, ``created`` or ``assigned``."""
    for rule, kind in ((_ASSIGNED, "assigned"), (_OWN, "own"), (_CREATED, "created"), (_THEIR, "own")):
        found = rule.search(text)
        if found:
            return found, kind
    return None


def _mode(text: str, start: int) -> str:
    """``private`` when the clause asking for ownership restricts reading (or names no verb),
    ``edit-own`` when it only restricts changing ("see all bookings but edit only their own")."""
    before = _CLAUSE_END.split(text[:start])[-1]
    after = _CLAUSE_END.split(text[start:])[0]
    clause = before + after
    if re.search(rf"\b(?:{_READ_VERBS}|manage|manages)\b", clause, re.IGNORECASE):
        return "private"
    if re.search(rf"\b(?:{_WRITE_VERBS})\b", clause, re.IGNORECASE):
        return "edit-own"
    return "private"


def _role(words: str) -> str:
    kept = [naming.singular(w) for w in words_of(words)]
    return "_".join(kept[-1:])


def _spec_roles(spec: Spec, table: str) -> tuple[dict[str, str], bool]:
    """Role → ``write``/``read`` of the roles recipes the spec's lines ask for, and whether one of
    them guards ``table`` (only its writers may create rows there)."""
    levels: dict[str, str] = {}
    guarded = False
    for text in [f.text for f in spec.features] + list(spec.constraints):
        found = match_roles(text, spec, None)
        if found is not None:
            if found.params["reader"]:
                levels.setdefault(found.params["reader"], "read")
            levels[found.params["writer"]] = "write"
            guarded = guarded or found.params["tables"] is None or table in found.params["tables"]
    return levels, guarded


def match_ownership(text: str, spec: Spec, entity_hint: str | None) -> Recipe | Miss | None:
    """``sellers only see their own listings`` / ``customers can edit only their own bookings`` /
    ``users view only the orders they created``: rows owned by the user who created them."""
    found = _trigger(text)
    if found is None:
        return None
    m, kind = found
    said = m[0].strip()
    entity = entity_in(m["what"] or "", spec, None) or entity_in(text, spec, entity_hint)
    if kind == "assigned":
        return Miss("ownership", [said], "rows 'assigned to' a user need each sign-in account linked to a row of "
                    "the people entity the rows refer to; the offline templates do not link accounts to rows "
                    "(rows a user created can be made theirs: say 'their own')")
    if entity is None:
        return Miss("ownership", [said], "ownership needs the entity whose rows are owned; the line names none")
    if any(f.name == OWNER_COLUMN for f in entity.fields):
        return Miss("ownership", [said], f"{entity.name} already has a field {OWNER_COLUMN!r}, the column the "
                    "app would keep the owner in")
    roles, guarded = _spec_roles(spec, entity.table)
    see_all = _SEE_ALL.search(text)
    privileged = sorted({r for r in roles if r in ADMIN_ROLES} | (
        {_role(see_all["who"])} & set(roles) if see_all else set()))
    if guarded and not [r for r, level in roles.items() if level == "write" and r not in privileged]:
        return Miss("ownership", [said], f"'their own' rows are the rows a user created, but only "
                    f"{', '.join(privileged)} (who see every row) may create rows")
    mode = _mode(text, m.start())
    matched = [said] + ([see_all[0]] if see_all and _role(see_all["who"]) in privileged else [])
    return Recipe(kind="ownership", name="private" if mode == "private" else "edit-own", entity=entity.name,
                  matched=matched, params={"mode": mode, "column": OWNER_COLUMN, "privileged": privileged,
                                           "writer": next((r for r, level in roles.items()
                                                           if level == "write" and r not in privileged), None)})
