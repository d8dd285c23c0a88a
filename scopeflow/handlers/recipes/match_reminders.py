"""Matcher of the reminders recipe: due-date reminders through an outbox."""

from __future__ import annotations

import re

from scopeflow.handlers import naming
from scopeflow.handlers.recipes.model import Miss, Recipe
from scopeflow.handlers.recipes.reading import DATE_TYPES, date_field, done_field, entities_in, entity_in
from scopeflow.handlers.spec import Entity, Integration, Spec

_REMIND = re.compile(r"\b(remind\w*|notif\w*|alerts?)\b", re.IGNORECASE)
_EVENT_WORDS = re.compile(r"\b(when|whenever|once|as soon as|after)\b(?!.*\bdue\b)", re.IGNORECASE)
_DAYS_BEFORE = re.compile(r"\b(?P<n>\d+|one|two|three|seven)\s+days?\s+(?:before|ahead|in advance)\b", re.IGNORECASE)
_SMS = re.compile(r"\b(sms|text messages?|texts?)\b", re.IGNORECASE)
_NUMBERS = {"one": 1, "two": 2, "three": 3, "seven": 7}
_BY_EMAIL = re.compile(r"\b(e-?mail(s|ed)?|smtp)\b", re.IGNORECASE)
_MAIL_SERVICE = re.compile(r"(e-?mail|\bmail|smtp)", re.IGNORECASE)


def email_integration(spec: Spec) -> Integration | None:
    """The scope's email integration (named mail/SMTP, or needing an ``SMTP_*`` credential), if it
    has one: reminders asked for by email are sent through it."""
    for integration in spec.integrations:
        named = _MAIL_SERVICE.search(f"{integration.name} {integration.label}")
        if named or any(c.upper().startswith("SMTP_") for c in integration.credentials):
            return integration
    return None


def _recipient(spec: Spec, entity: Entity) -> tuple[str, str | None] | None:
    """(email field, reference field it is reached through or None): on the row, or one reference away."""
    own = next((f.name for f in entity.fields if f.type == "email"), None)
    if own:
        return own, None
    for f in entity.fields:
        if f.type == "reference" and f.reference:
            target = spec.entity(f.reference)
            email = next((g.name for g in target.fields if g.type == "email"), None)
            if email:
                return email, f.name
    return None


# Entities that are things happening on a date (what "a reminder the day before" is about).
_SCHEDULED = {"appointment", "booking", "visit", "reservation", "event", "session", "class", "meeting", "lesson",
              "shift", "consultation", "checkup", "check-up", "exam", "interview", "call", "delivery", "pickup",
              "trip", "game", "match", "training", "rehearsal", "treatment", "vaccination", "loan"}


def _unnamed_entity(spec: Spec) -> tuple[Entity | None, str]:
    """The entity a reminder line that names none is about, and what that guess assumes ("" when
    the scope has only one dated entity): the dated entities someone can be emailed about, then
    among several the one thing that happens on a date (an appointment, a booking). Without an
    entity, the text says why none could be chosen (several such things), or is "" (none is dated)."""
    dated = [e for e in spec.entities if any(f.type in DATE_TYPES for f in e.fields)]
    if len(dated) == 1:
        return dated[0], ""
    reachable = [e for e in dated if _recipient(spec, e) is not None]
    scheduled = [e for e in reachable if {w.lower() for w in naming.ascii_words(e.label)} & _SCHEDULED
                 or e.name.lower() in _SCHEDULED]
    for candidates, why in ((reachable, "the only dated entity with an address to email"),
                            (scheduled, "the only one of them that happens on a date")):
        if len(candidates) == 1:
            names = ", ".join(e.name for e in dated)
            return candidates[0], (f"the line names no entity: reminders are for {candidates[0].name}, {why} "
                                   f"(dated entities: {names}); name the entity to choose another")
    options = scheduled or reachable or dated
    if not options:
        return None, ""
    return None, ("the line names no entity and several could be meant (" + ", ".join(e.name for e in options)
                  + "): say which, e.g. 'remind owners the day before "
                  f"their {naming.ascii_words(options[0].label)[0].lower()}'")


def match_reminder(text: str, spec: Spec, entity_hint: str | None) -> Recipe | Miss | None:
    """``remind borrowers when loans are due`` / ``a reminder 3 days before an event starts``: due-date
    reminders written to an outbox and sent by a CLI command of the app. A line that asks for them by
    email (``email members a reminder …``) in a scope with an email integration records that
    integration in ``params["smtp"]``: the outbox then cannot send without its SMTP settings."""
    m = _REMIND.search(text)
    if m is None:
        return None
    if _EVENT_WORDS.search(text) and not re.search(r"\b(due|deadline|before|upcoming|starts?)\b", text, re.IGNORECASE):
        return None      # a notification on an event: match_notifications reads it
    if _SMS.search(text):
        return Miss("reminder", [m[0], _SMS.search(text)[0]], "SMS sending is not built; reminders can be emailed")
    dated = [e for e in entities_in(text, spec) if any(f.type in DATE_TYPES for f in e.fields)]
    entity = dated[0] if dated else entity_in(text, spec, entity_hint)
    assumption = ""
    if entity is None:       # "reminders the day before" names no entity: guess the one meant
        entity, assumption = _unnamed_entity(spec)
        if entity is None and assumption:
            return Miss("reminder", [m[0]], assumption)
    field = date_field(text, entity) if entity else None
    if entity is None or field is None:
        return Miss("reminder", [m[0]], "a reminder needs an entity with a date field to be due on")
    recipient = _recipient(spec, entity)
    if recipient is None:
        return Miss("reminder", [m[0]], f"a reminder needs an email address on {entity.name} or on an "
                    "entity it refers to")
    days = _DAYS_BEFORE.search(text)
    mail = email_integration(spec) if _BY_EMAIL.search(text) else None
    ahead = (int(days["n"]) if days["n"].isdigit() else _NUMBERS[days["n"].lower()]) if days else 1
    via = recipient[1]
    return Recipe(kind="reminder", name=f"{field.name.replace('_', '-')}-reminder", entity=entity.name,
                  matched=[m[0]] + ([days[0]] if days else []), assumption=assumption,
                  params={"smtp": (mail.label or mail.name) if mail else None,
                          "smtp_subject": f"integration:{mail.name}" if mail else None,
                          "field": field.name, "field_type": field.type, "days": ahead, "done": done_field(entity),
                          "email": recipient[0], "via": via,
                          "via_table": spec.entity(next(f.reference for f in entity.fields if f.name == via) or "").table
                          if via else None})
