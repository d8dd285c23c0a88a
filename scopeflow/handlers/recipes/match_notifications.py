"""Matcher of the notifications recipe: a message to someone when something happens to a row.

``notify the customer when an order is shipped`` names who (``customer``), the entity the event
happens to (``order``) and the event (its choice field becomes ``shipped``). Events understood: a row
is created (``an order is placed``, or in the active voice ``a customer places an order``, where the
row is the verb's object); a choice field becomes one of its values; a reference field is set (``is assigned``);
a number field falls below / rises above a number; a named field changes. Who is an email field
of the row, or of the row a reference field points to, or "staff" (the app's STAFF_EMAIL address).
A line whose event or recipient cannot be found is a :class:`Miss` saying which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from scopeflow.handlers import naming
from scopeflow.handlers.recipes.model import Miss, Recipe
from scopeflow.handlers.recipes.reading import NUMBER_TYPES, entities_in, field_stems, fields_named, words_of
from scopeflow.handlers.spec import Entity, Field, Spec

_TRIGGER = re.compile(r"\b(notif\w*|alert\w*|remind\w*|tell|inform|warn|ping|(?:send|get|receive)s?\s+(?:an?\s+)?"
                      r"(?:e-?mail|message)s?)\b", re.IGNORECASE)
_EMAIL = re.compile(r"\b(e-?mail(?:s|ed)?|message)\b", re.IGNORECASE)     # a trigger only when it names whom
_WHEN = re.compile(r"\b(when|whenever|once|as soon as|after|if)\b", re.IGNORECASE)
_DUE = re.compile(r"\b(due|deadline|before|upcoming|starts?|overdue)\b", re.IGNORECASE)
_ARTICLE = r"(?:(?:the|our|all|their|its|his|her|an?)\s+)?"
_WHO = re.compile(
    rf"\bsends?\s+(?:an?\s+)?(?:e-?mail|message|notification|alert)s?\s+to\s+{_ARTICLE}(?P<to>[a-z][\w-]*)"
    rf"|\b(?:notif(?:y|ies)|alert|alerts|e-?mails?|message|tells?|informs?|remind|reminds|pings?|warns?)\s+"
    rf"{_ARTICLE}(?P<who>[a-z][\w-]*)"
    r"|\b(?P<subject>[a-z][\w-]*)\s+(?:gets?|receives?|(?:is|are) (?:notified|emailed|alerted|told|informed))\b",
    re.IGNORECASE)
_NOT_WHO = {"to", "when", "whenever", "if", "once", "notification", "alert", "email", "e-mail", "message",
            "reminder", "about", "on", "automatic", "automatically", "immediately", "someone", "somebody"}
STAFF_WORDS = {"staff", "admin", "administrator", "manager", "team", "office", "us", "me", "employee"}
_BELOW = re.compile(r"\b(?:below|under|less than|lower than|beneath|fewer than)\s+(?P<n>-?\d+(?:\.\d+)?)\b",
                    re.IGNORECASE)
_ABOVE = re.compile(r"\b(?:above|over|more than|greater than|higher than|exceeds?)\s+(?P<n>-?\d+(?:\.\d+)?)\b",
                    re.IGNORECASE)
_CREATED = re.compile(r"\b(created|added|submitted|registered|booked|placed|received|made|signs? up|comes in|"
                      r"arrives?|new)\b", re.IGNORECASE)
# "when a customer places an order": an active verb of making something, followed by an article, so
# a noun of the same spelling ("when books are returned", "when orders ship") is not read as one.
_MAKES = re.compile(r"\b(?P<verb>plac(?:e|es)|book(?:s)?|creates?|adds?|submits?|registers?|makes?|opens?|raises?|"
                    r"schedules?|reserves?|orders?|requests?|logs?|files?|posts?|writes?|leaves?|enters?|sends?)\s+"
                    r"(?:an?|the|their|his|her|its|one|another|new)\b", re.IGNORECASE)
_ASSIGNED = re.compile(r"\b((?:re)?assign\w*|allocat\w*|given to|handed (?:over )?to)\b", re.IGNORECASE)
_CHANGED = re.compile(r"\b(chang\w*|updated|edited|modified)\b", re.IGNORECASE)


@dataclass
class _Event:
    kind: str                  # created | becomes | set | below | above | changed
    words: str                 # the words of the line that say it
    field: Field | None = None
    value: Any = None


def match_notification(text: str, spec: Spec, entity_hint: str | None) -> Recipe | Miss | None:
    """``email the agent when a ticket is assigned`` / ``alert staff when stock falls below 5``: an
    outbox message written when the event happens to a row, sent by the app's send-reminders command."""
    when = _WHEN.search(text)
    if when is None or _DUE.search(text):
        return None
    head, event_text = _split(text, when)
    trigger = _TRIGGER.search(head) or (_EMAIL.search(head) if _who(head) else None)
    if trigger is None:
        return None
    found = _event_entity(event_text, spec)
    if found is None:
        return Miss("notify", [trigger[0], when[0]], "a notification needs the entity the event happens to; "
                    f"{event_text!r} names none (nor a number field of one)")
    entity, event = found
    if event is None:
        return Miss("notify", [trigger[0], when[0]], f"no event of {entity.name} found in {event_text!r}: say "
                    "'is created', one of its choice values, 'is assigned' (a reference field), "
                    "'<number> falls below N' or '<field> changes'")
    who = _who(head)
    recipient = _recipient(spec, entity, who, event)
    if isinstance(recipient, str):
        return Miss("notify", [trigger[0], when[0], event.words], recipient)
    return _recipe(entity, event, recipient, [trigger[0]] + ([who] if who else []) + [when[0], event.words])


_WHEN_SAID = {"created": "a row is created", "becomes": "{f} becomes {v}", "set": "{f} is set",
              "below": "{f} falls below {v}", "above": "{f} rises above {v}", "changed": "{f} changes"}


def _split(text: str, when: re.Match[str]) -> tuple[str, str]:
    """(who part, event part): ``notify X when E`` or ``when E, notify X``."""
    if not text[: when.start()].strip() and "," in text[when.end():]:
        comma = text.index(",", when.end())
        return text[comma + 1:], text[:comma]
    return text[: when.start()], text[when.start():]


def _recipe(entity: Entity, event: _Event, recipient: dict[str, Any], matched: list[str]) -> Recipe:
    field = event.field.name if event.field else None
    value = event.value
    tail = {"created": "created", "changed": f"{field}-changed", "set": f"{field}-set",
            "becomes": f"{field}-{'-'.join(words_of(str(value)))}",
            "below": f"{field}-below-{value}", "above": f"{field}-above-{value}"}[event.kind]
    name = re.sub(r"[^a-z0-9]+", "-", tail.lower().replace("_", "-")).strip("-")
    return Recipe(kind="notify", name=name, entity=entity.name, matched=list(dict.fromkeys(matched)),
                  params={"event": event.kind, "field": field, "when": _WHEN_SAID[event.kind].format(f=field, v=value), "field_type": event.field.type if event.field else None,
                          "value": value, **recipient})


def _event_entity(event_text: str, spec: Spec) -> tuple[Entity, _Event | None] | None:
    """The entity the event happens to and the event (None when its words name no event of it)."""
    made = _MAKES.search(event_text)
    if made is not None:   # active voice: the thing made is the object, named after the verb
        objects = _by_mention(event_text[made.end():], entities_in(event_text[made.end():], spec))
        if objects:
            return objects[0], _Event("created", made["verb"])
    named = _by_mention(event_text, entities_in(event_text, spec))
    for entity in named:
        event = _event(event_text, entity, named=True)
        if event is not None:
            return entity, event
    for entity in spec.entities:          # "when stock falls below 5": the entity owning the number field
        event = _event(event_text, entity, named=False) if _threshold(event_text) else None
        if event is not None:
            return entity, event
    return (named[0], None) if named else None


def _by_mention(text: str, entities: list[Entity]) -> list[Entity]:
    """``entities`` in the order the text first mentions them (the event's subject comes first)."""
    words = [naming.singular(w) for w in words_of(text)]

    def first(entity: Entity) -> int:
        keys = {naming.singular(w).lower() for w in naming.ascii_words(entity.label)} | {entity.name.lower()}
        return next((i for i, w in enumerate(words) if w in keys), len(words))

    return sorted(entities, key=first)


def _threshold(text: str) -> tuple[str, re.Match[str]] | None:
    below, above = _BELOW.search(text), _ABOVE.search(text)
    return ("below", below) if below else (("above", above) if above else None)


def _event(text: str, entity: Entity, named: bool) -> _Event | None:
    threshold = _threshold(text)
    if threshold is not None:
        numbers = [f for _, f in fields_named(text, entity, NUMBER_TYPES)]
        only = [f for f in entity.fields if f.type in NUMBER_TYPES]
        field = numbers[0] if numbers else (only[0] if named and len(only) == 1 else None)
        if field is None:
            return None
        n = threshold[1]["n"]
        return _Event(threshold[0], threshold[1][0], field, float(n) if "." in n else int(n))
    created = _CREATED.search(text)
    becomes = _choice_event(text, entity)
    if becomes is not None and not (created and becomes.words.lower() in ("new", "created", "added")):
        return becomes
    if created:
        return _Event("created", created[0])
    if (assigned := _ASSIGNED.search(text)) is not None:
        named_refs = fields_named(text[assigned.end():], entity, ("reference",))
        # "assigned to an agent" names the reference field; else it is the recipient's (see _recipient)
        return _Event("set", assigned[0], named_refs[0][1] if named_refs else None)
    changed = _CHANGED.search(text)
    fields = fields_named(text, entity, tuple({f.type for f in entity.fields}))
    if changed and fields:
        return _Event("changed", changed[0], fields[0][1])
    return None


def _choice_event(text: str, entity: Entity) -> _Event | None:
    """A choice value of the entity said in the event (``ships`` says ``shipped``)."""
    words = words_of(text)
    named = {f.name for _, f in fields_named(text, entity, ("choice",))}
    hits = []
    for f in entity.fields:
        for choice in f.choices if f.type == "choice" else ():
            said = next((w for w in words if w in _forms(choice)), None)
            if said is None and " " in choice.strip() and choice.lower() in text.lower():
                said = choice
            if said:
                hits.append((f.name not in named, _Event("becomes", said, f, choice)))
    return min(hits, key=lambda hit: hit[0])[1] if hits else None


def _forms(choice: str) -> set[str]:
    """Words that say a one-word choice value: ``shipped`` → ship, ships, shipping, shipped."""
    c = choice.lower().strip()
    if c.endswith("ied"):
        bases = {c[:-3] + "y"}
    elif c.endswith("ed"):
        bases = {c[:-2], c[:-1]} | ({c[:-3]} if len(c) > 4 and c[-3] == c[-4] else set())
    else:
        bases = {c}
    return {c} | {b + end for b in bases for end in ("", "s", "es", "ing", "ed", "d")}


def _who(before: str) -> str | None:
    """The word naming who gets the message (``the customer`` → customer), None when not said."""
    for m in _WHO.finditer(before):
        word = (m["to"] or m["who"] or m["subject"] or "").lower()
        if word and naming.singular(word) not in _NOT_WHO and word not in _NOT_WHO:
            return word
    return None


def _emails(spec: Spec, entity: Entity) -> list[tuple[set[str], dict[str, Any]]]:
    """Every address reachable from a row: (words naming it, recipient params)."""
    own_words = {naming.singular(w).lower() for w in naming.ascii_words(entity.label)} | {entity.name.lower()}
    found = [(field_stems(f) | own_words, {"email": f.name, "via": None, "via_table": None})
             for f in entity.fields if f.type == "email"]
    for f in entity.fields:
        target = spec.entity(f.reference) if f.type == "reference" and f.reference else None
        email = next((g.name for g in target.fields if g.type == "email"), None) if target else None
        if target is not None and email:
            target_words = {naming.singular(w).lower() for w in naming.ascii_words(target.label)}
            found.append((field_stems(f) | target_words, {"email": email, "via": f.name, "via_table": target.table}))
    return found


def _recipient(spec: Spec, entity: Entity, who: str | None, event: _Event) -> dict[str, Any] | str:
    """Recipient params, or the reason no address can be found. An ``is assigned`` event takes its
    reference field from the recipient (the ticket's agent is set)."""
    reachable = _emails(spec, entity)
    key = naming.singular(who).lower() if who else None
    if key in STAFF_WORDS:
        if event.kind == "set" and event.field is None:
            return f"{event.words!r} needs the reference field of {entity.name} being set named (e.g. 'assigned to an agent')"
        return {"email": None, "via": None, "via_table": None, "staff": True}
    matches = [params for words, params in reachable if key in words] if key else \
        [params for _, params in reachable]
    if event.kind == "set":
        matches = [p for p in matches if p["via"] and (event.field is None or p["via"] == event.field.name)]
    listed = ", ".join(f"{p['via']}.{p['email']}" if p["via"] else p["email"] for _, p in reachable) or "none"
    if not matches:
        return (f"no email address for {who!r} on {entity.name} or a row it refers to (reachable: {listed}); "
                "say 'staff' to send to the app's STAFF_EMAIL address") if who else (
            f"the line does not say whom to notify and {entity.name} reaches no single email address "
            f"(reachable: {listed})")
    if len(matches) > 1 and not who:
        return f"the line does not say whom to notify and {entity.name} reaches several addresses ({listed})"
    found = {**matches[0], "staff": False}
    if event.kind == "set" and event.field is None:
        event.field = next(f for f in entity.fields if f.name == found["via"])
    return found
