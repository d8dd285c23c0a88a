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
from scopeflow.handlers.spec import Entity, Spec

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
# "managers see all …" (for private rows) / "managers can edit any …" (for edit-own rows): who is exempt.
_ALL = {mode: re.compile(rf"\b(?P<who>[a-z][\w-]*)\s+(?:can\s+|may\s+)?(?:{verbs}|manage|manages)\s+"
                         r"(?:all|every|everything|any)\b", re.IGNORECASE)
        for mode, verbs in (("private", _READ_VERBS), ("edit-own", _WRITE_VERBS))}
# Role names that stand for "the people who run the app": they see and change every row.
ADMIN_ROLES = frozenset({"admin", "administrator", "manager", "supervisor", "superuser", "owner"})


def _trigger(text: str) -> tuple[re.Match[str], str] | None:
    """The phrase that asks for ownership and which kind: ``own``, ``created``, ``assigned`` or a bare
    ``their`` (``see their tickets``: whose rows is not said)."""
    for rule, kind in ((_ASSIGNED, "assigned"), (_OWN, "own"), (_CREATED, "created"), (_THEIR, "their")):
        found = rule.search(text)
        if found:
            return found, kind
    return None


def _mode(text: str, start: int) -> tuple[str, str | None]:
    """(``private`` or ``edit-own``, the verb that decided it). ``private`` when the clause asking for
    ownership restricts reading (or names no verb); ``edit-own`` when it only restricts changing
    ("customers see all bookings but edit only their own")."""
    clause = _CLAUSE_END.split(text[:start])[-1] + _CLAUSE_END.split(text[start:])[0]
    reads = re.findall(rf"\b(?:{_READ_VERBS}|manage|manages)\b", clause, re.IGNORECASE)
    if reads:
        return "private", reads[0]
    writes = re.findall(rf"\b(?:{_WRITE_VERBS})\b", clause, re.IGNORECASE)
    return ("edit-own", writes[0]) if writes else ("private", None)


def _owned_entity(text: str, m: re.Match[str], spec: Spec, hint: str | None) -> Entity | None:
    """The entity ``their own X`` names; for a bare ``their own`` the one named after the line's first
    verb (the words before it say who the users are: "members can see all orders but edit only their own")."""
    if m["what"]:
        return entity_in(m["what"], spec, None) or (entity_in(text[m.start():], spec, None) if
                                                     m["what"].lower() in ("one", "ones") else None)
    verb = re.search(rf"\b(?:{_READ_VERBS}|{_WRITE_VERBS}|manage|manages|have|has)\b", text, re.IGNORECASE)
    return entity_in(text[verb.end():] if verb else text, spec, hint)


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
    if kind == "assigned":
        return Miss("ownership", [said], "rows 'assigned to' a user need each sign-in account linked to a row of "
                    "the people entity the rows refer to; the offline templates do not link accounts to rows "
                    "(rows a user created can be made theirs: say 'their own')")
    if kind == "their":
        return Miss("ownership", [said], f"{said!r} does not say whose rows: 'their own' (the rows a user "
                    "created) is built, rows assigned to a user are not")
    entity = _owned_entity(text, m, spec, entity_hint)
    if entity is None:
        return Miss("ownership", [said], "ownership needs the entity whose rows are owned; the line names none "
                    f"after its verb ({m['what'] or 'nothing'!r} is no entity of the scope)")
    if any(f.name == OWNER_COLUMN for f in entity.fields):
        return Miss("ownership", [said], f"{entity.name} already has a field {OWNER_COLUMN!r}, the column the "
                    "app would keep the owner in")
    roles, guarded = _spec_roles(spec, entity.table)
    mode, verb = _mode(text, m.start())
    see_all = _ALL[mode].search(text)
    everyone = _role(see_all["who"]) if see_all else None
    if everyone and everyone not in roles and everyone not in ("admin", "administrator"):
        return Miss("ownership", [said, see_all[0]], f"'{see_all[0]}' needs a role {everyone!r}; the scope names "
                    f"no such role (add a line like 'Only {see_all['who']} can change …', or leave it to the "
                    "admin account, which sees every row)")
    privileged = sorted({r for r in roles if r in ADMIN_ROLES} | ({everyone} & set(roles)))
    if guarded and not [r for r, level in roles.items() if level == "write" and r not in privileged]:
        return Miss("ownership", [said], f"'their own' rows are the rows a user created, but only "
                    f"{', '.join(privileged)} (who see every row) may create rows")
    matched = ([verb] if verb else []) + [said] + ([see_all[0]] if see_all else [])
    return Recipe(kind="ownership", name="private" if mode == "private" else "edit-own", entity=entity.name,
                  matched=matched, params={"mode": mode, "column": OWNER_COLUMN, "privileged": privileged,
                                           "writer": next((r for r, level in roles.items()
                                                           if level == "write" and r not in privileged), None)})
