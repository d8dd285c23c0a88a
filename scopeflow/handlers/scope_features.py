"""What a feature line asks for: a template kind (crud, search, export, login, health, api), or
custom work no offline template builds (payments, notifications, real time…), and which entity it
is about.

Split from :mod:`scopeflow.handlers.scope` (which re-exports :func:`classify_feature` and
:func:`feature_kinds`).
"""

from __future__ import annotations

import re

from scopeflow.handlers import naming
from scopeflow.handlers.spec import Entity, Feature

_CUSTOM_MARKERS = re.compile(
    r"\b(pay|payments?|checkout|stripe|paypal|notif\w*|reminders?|send (?:an )?e-?mails?|sms|push|"
    r"real[- ]?time|websockets?|chat|recommend\w*|machine learning|ai|upload\w*|images?|photos?|videos?|"
    r"maps?|geoloc\w*|oauth|sso|single sign|google|facebook|github|two[- ]factor|2fa|calendar|"
    r"translat\w*|ocr|analytics|dashboards?|charts?|webhooks?|ical|mobile app|rate[- ]?limit\w*|throttl\w*|"
    r"sla|slas|uptime|availability|high[- ]availability|99(?:\.9+)?\s?%|billing|invoicing|subscriptions?|"
    r"tenancy|multi[- ]tenan\w*|e-?mail (?:notifications?|alerts?|reminders?|members|users|customers|them|people)|newsletters?|backups?|audit (?:log|trail)s?|i18n|locali[sz]\w*|"
    r"multi[- ]?language|load[- ]balanc\w*|autoscal\w*|encrypt\w*|gdpr|offline mode|pwa|import\w*)\b",
    re.IGNORECASE)
_KIND_RULES = (
    ("login", re.compile(r"\b(log ?in|logins?|sign ?in|sign ?up|auth\w*|accounts?|passwords?|register|"
                         r"registration|roles?|permissions?|logged[- ]in)\b", re.IGNORECASE)),
    ("export", re.compile(r"\b(export\w*|csv|download\w*)\b", re.IGNORECASE)),
    ("search", re.compile(r"\b(search\w*|filter\w*|find|look ?up|sort\w*|such\w*|buscar|busca|busque\w*|"
                          r"cherch\w*|recherch\w*|filtr\w*)\b", re.IGNORECASE)),
    ("health", re.compile(r"\b(health\w*|liveness|readiness|status page)\b", re.IGNORECASE)),
    ("api", re.compile(r"\b(api|rest|json|endpoints?)\b", re.IGNORECASE)),
    ("crud", re.compile(r"\b(creat(?:e|ed|es|ing)|add(?:ed|s|ing)?|edit\w*|updat\w*|delet\w*|remov\w*|"
                        r"list(?:ed|s|ing)?|manag\w*|view\w*|brows\w*|crud|track\w*|record(?:ed|s)?|see|show\w*|"
                        r"keep|store[sd]?|organi[sz]\w*|log(?:s|ged)?|enter(?:s|ed)?|book(?:s|ing)?|cancel|"
                        r"move|reschedule|schedule|"
                        # the same verbs in German, Spanish and French scopes
                        r"anleg\w*|bearbeit\w*|lösch\w*|auflist\w*|verwalt\w*|anzeig\w*|erfass\w*|"
                        r"crear|editar|borrar|eliminar|listar|gestionar|registrar|ver|"
                        r"créer|modifier|supprimer|lister|gérer|afficher)\b", re.IGNORECASE)),
)
_UNBUILDABLE_EXPORT = re.compile(r"\b(pdf|excel|xlsx|word|docx)\b", re.IGNORECASE)


def classify_feature(text: str, entity_keys: set[str] | frozenset[str] = frozenset()) -> Feature | None:
    """The feature ``text`` asks for, or ``None`` when it names nothing recognisable. A marker word
    that names an entity of the scope (``list payments`` with a Payment entity) asks for no custom code."""
    markers = [m for m in _CUSTOM_MARKERS.finditer(text) if naming.lookup_key(m[0]) not in entity_keys]
    if markers:
        return Feature(text, "custom", False, f"no offline template builds: {text} (it asks for \u201c{markers[0][0]}\u201d)")
    for kind, rule in _KIND_RULES:
        if rule.search(text):
            if kind == "export" and (other := _UNBUILDABLE_EXPORT.search(text)):
                return Feature(text, kind, False, f"no offline template builds: {other[0]} export (only CSV)")
            return Feature(text, kind, True)
    return None


def feature_kinds(feature: Feature) -> list[str]:
    """Every template kind a buildable feature asks for (``list and search`` is crud and search)."""
    if not feature.buildable:
        return []
    kinds = [kind for kind, rule in _KIND_RULES if rule.search(feature.text)]
    return list(dict.fromkeys([feature.kind, *kinds]))


def _features(items: list[str], entities: list[Entity], strict: bool) -> list[Feature]:
    """Features from bullets (``strict``: every bullet is one, unknown → custom) or prose sentences."""
    entity_keys = _entity_keys(entities)
    return [found for item in items if (found := _feature(item, entity_keys, strict)) is not None]


def _feature(item: str, entity_keys: dict[str, tuple[int, str]], strict: bool) -> Feature | None:
    """A feature line (``strict``) or sentence; a sentence's parentheses list values, not actions
    (``status (booked, cancelled or done)`` asks for no booking screen)."""
    text = naming.clean_label(item)
    found = classify_feature(text if strict else re.sub(r"\([^()]*\)", "", text), set(entity_keys))
    if found is not None:
        found.text = text
    if found is None and strict:
        found = Feature(text, "custom", False, f"no offline template builds: {text}")
    if found is not None:
        found.entity = _entity_mentioned(text, entity_keys)
    return found


def _entity_keys(entities: list[Entity]) -> dict[str, tuple[int, str]]:
    """Lookup key of each entity's name and label → (position in the spec, entity name)."""
    keys: dict[str, tuple[int, str]] = {}
    for position, e in enumerate(entities):
        for key in (naming.lookup_key(e.label), naming.lookup_key(e.name)):
            keys.setdefault(key, (position, e.name))
    return keys


def _entity_mentioned(text: str, entity_keys: dict[str, tuple[int, str]]) -> str | None:
    """The first entity (in spec order) whose name or label is a word of ``text``."""
    words = {naming.lookup_key(word) for word in set(re.findall(r"[A-Za-z][A-Za-z0-9]*", text))}
    found = [entity_keys[w] for w in words if w in entity_keys]
    return min(found)[1] if found else None
