"""The scope analyst: a markdown scope in, a :class:`~scopeflow.handlers.spec.Spec` out.

**Scope format** (liberal on purpose; see ``examples/scopes/``)::

    # Title
    Free text (the first paragraph becomes the summary).
    ## Entities
    - Book: title (text, required, max 200), pages: integer min 1, author (-> Author)
    - Author — name (string, unique), bio (markdown)
    ## Features
    - Search books by title
    ## Integrations
    - Stripe payments (needs STRIPE_API_KEY)
    ## Constraints
    - Only logged-in users can edit

Helpers with one idea each: :mod:`scope_markdown` (blocks and sections), :mod:`scope_sections`
(what a heading means: "What we track", "Must have", "Business rules"…), :mod:`scope_entities`
(field syntaxes and types), :mod:`scope_relations` ("each pet belongs to an owner"), :mod:`scope_rules`
(rules and roles in feature lists), :mod:`scope_prose` (entities mined from sentences).

The markdown is read from markdown-it-py tokens (:mod:`scope_markdown`): sections open at a heading
of any level (also wiki ``h2.`` and org-mode ``**`` headings), a bold label (``**Entities**``) or an
inline label (``Entities:``, also followed by text); YAML front matter gives at most the title and
the summary; a Gherkin ``Feature:`` line with ``Scenario:`` lines below names the app. Entities come
from items (fields inline or as nested items), sub-headings or bold lines followed by fields, and
tables (entities × fields, or one entity's field/type/required/notes columns, where a type cell
naming an entity with a ``reference`` note is that reference and a ``choice`` type takes its values
from the notes). Field syntaxes: ``name (type, mods)``, ``name: type (mods)``, ``name — type, mods``,
``name -> Entity (required)``, ``name ref Entity``, ``name belongs to Entity``. Names match in any
case and number (``-> authors`` finds ``Author``). Without an entities section the prose is mined
for entities and fields (``users can create projects with a name and a deadline, and add tasks to
a project``, ``we keep our members (name, phone)``, ``guardamos los socios con nombre y correo``);
everything mined is an ``assumed`` requirement. A paragraph is read sentence by sentence: a sentence
no requirement came from is the summary (the opening ones of the first paragraph) or a
``not understood`` requirement.

**Requirements.** :func:`read_scope` also turns every meaningful line into
:class:`~scopeflow.handlers.requirements.Requirement` s with their source lines (title, summary,
entity, field, modifier, relation, feature, integration, constraint); a line it cannot place is a
``not understood`` requirement with a ``line:N`` question. It reports the non-blank lines no
requirement covers (``unmapped_lines``, recorded on the analyse span; the evidence gate wants 0).

**Defaults are applied, questions record them.** ``analyze`` always returns a consistent spec:
wherever it had to guess, it applied its proposed default and added a :class:`Question` saying
so. :func:`apply_answers` then changes only what a person answered differently; unanswered
questions keep their defaults (what ``--yes`` does). A question's kind is the prefix of its
``topic``; what each kind accepts as an answer:

- ``field_type:Entity.field`` — unknown type; default ``text``. Accepts a type or synonym
  (``integer``, ``money``, ``choice: a|b``…) or an entity name (makes it a reference).
- ``modifier:Entity.field`` — a modifier it did not understand; default ``ignore``. Accepts
  ``ignore`` or modifiers (``required``, ``unique``, ``min 1``, ``max 200``, ``default X``).
- ``reference:Entity.field`` — reference to an entity the scope does not define; default
  ``create`` (an entity with a required ``name`` was added). Accepts ``create``, ``text`` (a plain
  text field instead) or the name of another entity.
- ``fields:Entity`` — an entity found without fields; default ``name (text, required)`` (added).
  Accepts a field list in the Entities syntax, replacing the default fields.
- ``entities:prose`` — entities mined from prose; default ``yes``. Accepts ``yes`` or entity lines
  (one per line, Entities syntax) that replace everything mined.
- ``data:none`` — no entities found at all; default empty (the spec stays empty and the
  lifecycle ends blocked). Accepts entity lines.
- ``credentials:integration`` — an integration without a named credential; default
  ``<NAME>_API_KEY``. Accepts comma-separated variable names.
- ``line:N`` — line N was not understood; default ``ignore``. Accepts only ``ignore`` (an answer
  cannot build a line nobody understood: rewrite it in the scope).

**Complexity score** = 3 × entities + fields + 2 × references + 4 × features the offline
templates cannot build + 3 × integrations. Classes: ≤ 15 ``simple``, ≤ 40 ``medium``, ≤ 80
``complex``, above that ``monster``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from scopeflow.handlers import naming, recipes
from scopeflow.handlers import requirements as req
from scopeflow.handlers import scope_markdown as sm
from scopeflow.handlers.context import TaskContext
from scopeflow.handlers.failures import DESIGN_FLAW, TaskFailure
from scopeflow.handlers.registry import NO_RETRY, operator
from scopeflow.handlers.scope_entities import (
    DEFAULT_FIELDS,
    ScopeError,
    _apply_reading,
    _Asker,
    _build_entities,
    _EntityReader,
    _lookup_for,
    _norm,
    _parse_entity_lines,
    _parse_field_items,
    _RawEntity,
    _RawField,
    _read_modifiers,
    _Resolver,
    _set_fields,
    _strip_markdown,
)
from scopeflow.handlers.scope_features import _KIND_RULES, _entity_keys, _entity_mentioned, _feature
from scopeflow.handlers.scope_features import _features as _features  # re-exported: llm_agents
from scopeflow.handlers.scope_features import classify_feature as classify_feature  # re-exported
from scopeflow.handlers.scope_features import feature_kinds as feature_kinds  # re-exported
from scopeflow.handlers.scope_prose import mine_prose
from scopeflow.handlers.scope_relations import Relation, apply_relations, relation_lines
from scopeflow.handlers.scope_relations import sentences as split_sentences
from scopeflow.handlers.scope_rules import is_rule
from scopeflow.handlers.scope_trace import _Item, _Tracer
from scopeflow.handlers.spec import Entity, Feature, Field, Integration, Spec
from scopeflow.spans import semconv

MAX_SCOPE_BYTES = 1024 * 1024
COMPLEXITY_THRESHOLDS = ((15, "simple"), (40, "medium"), (80, "complex"))


# ---------------------------------------------------------------- features and integrations

_CREDENTIAL = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")


def _integrations(items: list[str], asker: _Asker) -> list[Integration]:
    """``Stripe payments (needs STRIPE_API_KEY)``: a name, and the credentials it names."""
    found = []
    labels = [naming.clean_label(re.split(r"[(:—–]|\s-\s", item, maxsplit=1)[0]) or item for item in items]
    names = naming.dedupe(naming.field_name(label, fallback="integration") for label in labels)
    for item, label, name in zip(items, labels, names, strict=True):
        credentials = list(dict.fromkeys(_CREDENTIAL.findall(item)))
        if not credentials:
            default = f"{name.upper().rstrip('_')}_API_KEY"
            credentials = [default]
            asker.ask(f"credentials:{name}", f"integration {label!r} names no credential; I assumed "
                      f"{default}. Which environment variables does it need?", default)
        found.append(Integration(name, label, credentials, naming.clean_label(item)))
    return found


def _integrations_from_prose(text: str) -> list[Integration]:
    """Credential names written in prose (``needs PAYMENT_API_KEY``), one integration each."""
    found = []
    for credential in dict.fromkeys(_CREDENTIAL.findall(text)):
        if credential.startswith("SCOPEFLOW_"):
            continue
        stem = re.sub(r"_(API_KEY|KEY|TOKEN|SECRET|PASSWORD)$", "", credential) or credential
        found.append(Integration(naming.field_name(stem), stem.replace("_", " ").title(), [credential],
                                 f"mentioned as needing {credential}"))
    return found


def _features_at(items: list[_Item], entities: list[Entity], strict: bool) -> list[tuple[Feature, _Item]]:
    """:func:`_features` keeping the item (and so the line) each feature came from."""
    entity_keys = _entity_keys(entities)
    return [(feature, item) for item in items if (feature := _feature(item.text, entity_keys, strict)) is not None]


def _integrations_at(items: list[_Item], asker: _Asker) -> list[tuple[Integration, _Item]]:
    return list(zip(_integrations([i.text for i in items], asker), items, strict=True))


def _integrations_from_prose_at(blocks: list[sm.Block]) -> list[tuple[Integration, _Item]]:
    found: list[tuple[Integration, _Item]] = []
    seen: set[str] = set()
    for block in blocks:
        parts = split_sentences(block.text)
        for sentence in parts:
            for integration in _integrations_from_prose(sentence):
                if integration.name not in seen:
                    seen.add(integration.name)
                    found.append((integration, _Item(sentence, block.line, list(block.lines),
                                                     sentence if len(parts) > 1 else "")))
    return found


# ---------------------------------------------------------------- analysis

def _check_scope(text: Any) -> str:
    if not isinstance(text, str):
        raise ScopeError(f"scope must be text, got {type(text).__name__}")
    if len(text.encode("utf-8", errors="replace")) > MAX_SCOPE_BYTES:
        raise ScopeError("scope is larger than 1 MB")
    if not naming.clean_label(text):
        raise ScopeError("scope is empty")
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def _section_items(blocks: list[sm.Block], sentences: bool = False) -> tuple[list[_Item], set[int]]:
    """Items of a non-entity section, and the lines that only introduce them (lead-ins, headers).

    A nested item becomes ``parent: child`` (the parent line is covered by its children); a
    paragraph line ending in ``:`` right before a list is a lead-in, not an item; a table row is
    its cells joined with `` — ``.
    """
    items: list[_Item] = []
    lead: set[int] = set()
    parents: dict[int, _Item] = {}
    for position, block in enumerate(blocks):
        following = blocks[position + 1] if position + 1 < len(blocks) else None
        if block.kind == "item":
            item = _Item(_strip_markdown(block.text), block.line, list(block.lines))
            parent = parents.get(block.level - 1)
            if parent is not None:
                item = _Item(f"{parent.text}: {item.text}", block.line, parent.lines + item.lines)
                if parent in items:
                    items.remove(parent)
            parents[block.level] = item
            items.append(item)
        elif block.kind == "header":
            lead.add(block.line)
        elif block.kind == "line" and block.text.rstrip().endswith(":") and following is not None \
                and following.kind in ("item", "header"):
            lead.add(block.line)
        elif block.kind in ("line", "row", "code"):
            text = " — ".join(c for c in block.cells if c.strip()) if block.kind == "row" else block.text
            parts = split_sentences(text) if sentences and block.kind == "line" else [text]
            items.extend(_Item(_strip_markdown(part), block.line, list(block.lines), part if len(parts) > 1 else "")
                         for part in parts if part)
    return [i for i in items if i.text], lead


def _blocks_of(doc: sm.Document, kind: str) -> list[sm.Block]:
    return [block for section in doc.sections if section.kind == kind for block in section.blocks]


def _summary_lines(doc: sm.Document) -> list[sm.Block]:
    """The first paragraph of the text before the first section (or of the first prose section)."""
    prose = next((s for s in doc.sections if s.kind == "prose" and s.blocks), None)
    if prose is None:
        return []
    paragraph = [prose.blocks[0]]
    for block in prose.blocks[1:]:
        if block.kind != "line" or block.line != paragraph[-1].line + 1:
            break
        paragraph.append(block)
    return [b for b in paragraph if b.kind == "line"]


_GREETING_OPENING = re.compile(r"^(?:hi|hello|hey|dear|hallo|hola|bonjour|good (?:morning|afternoon))\b[^,.!?]{0,30}"
                               r"[,!]\s+", re.IGNORECASE)


def _fallback_title(summary: str) -> str:
    """The first sentence of the summary, without the greeting of an e-mail written as one paragraph."""
    ungreeted = _GREETING_OPENING.sub("", summary)
    if ungreeted != summary:
        summary = ungreeted[:1].upper() + ungreeted[1:]
    first = re.split(r"(?<=[.!?])\s", summary, maxsplit=1)[0].rstrip(".!?")
    return (first[:57] + "…") if len(first) > 60 else (first or "Untitled app")


def score(spec: Spec) -> tuple[int, str]:
    """The complexity score and class (formula in the module docstring)."""
    fields = [f for e in spec.entities for f in e.fields]
    points = (3 * len(spec.entities) + len(fields) + 2 * sum(f.type == "reference" for f in fields)
              + 4 * sum(not f.buildable for f in spec.features) + 3 * len(spec.integrations))
    for limit, name in COMPLEXITY_THRESHOLDS:
        if points <= limit:
            return points, name
    return points, "monster"


def _wants_login(features: list[Feature], constraints: list[str]) -> bool:
    login_rule = dict(_KIND_RULES)["login"]
    return any(f.kind == "login" for f in features) or any(login_rule.search(c) for c in constraints)


def analyze(text: str) -> Spec:
    """Read a scope into a consistent Spec with one requirement per meaningful line; guesses are
    applied and recorded as questions (and as ``assumed`` requirements).

    Raises :class:`ScopeError` for a scope that is not text, empty, or larger than 1 MB.
    """
    return read_scope(text).spec


@dataclass
class Reading:
    """What :func:`read_scope` made of a scope: the spec and how well its lines were covered."""

    spec: Spec
    unmapped_lines: list[int]          # non-blank lines that are no structure and map to no requirement
    content_lines: int                 # non-blank lines of the scope


def _features_and_rules(feature_items: list[_Item], prose_blocks: list[sm.Block],
                        entities: list[Entity]) -> tuple[list[tuple[Feature, _Item]], list[_Item]]:
    """Features from the features sections (every item is one; unknown → custom) or, without one,
    from prose sentences; lines that state a rule (``… can't be booked in the past``) are constraints."""
    items = feature_items or [_Item(sentence, b.line, [b.line], sentence if len(parts) > 1 else "")
                              for b in prose_blocks for parts in [split_sentences(b.text)] for sentence in parts]
    rules = [item for item in items if is_rule(item.text)]
    return _features_at([i for i in items if i not in rules], entities, strict=bool(feature_items)), rules


def _read_entities(doc: sm.Document, prose_blocks: list[sm.Block], feature_items: list[_Item],
                   mined: bool) -> tuple[list[_RawEntity], list[Relation], bool]:
    """The raw entities (from the entities sections, else mined from prose), the relation sentences
    among them (paragraph lines made only of relation sentences are no entity lines), and whether
    the entities were mined from sentences (guesses)."""
    if mined:
        raws, _ = mine_prose([(b.line, b.text) for b in prose_blocks] + [(i.line, i.text) for i in feature_items])
        return raws, [], True
    sections = [s for s in doc.sections if s.kind == "entities"]
    if all(_written_as_prose(s) for s in sections):     # ``What we keep`` followed by sentences
        raws, _ = mine_prose([(b.line, b.text) for s in sections for b in s.blocks])
        if raws:
            return raws, [], True
    first = [raw for section in sections for raw in _EntityReader().read(section.blocks)]
    known = {naming.lookup_key(raw.label) for raw in first}
    paragraphs = [(b.line, b.text) for s in sections for b in s.blocks if b.kind == "line"] + \
        [(b.line, b.text) for b in prose_blocks if b.kind == "line"]
    relations, lines = relation_lines(paragraphs, known)
    raws = [raw for section in sections
            for raw in _EntityReader().read([b for b in section.blocks if b.line not in lines])]
    apply_relations(raws, relations)
    return raws, relations, False


def _written_as_prose(section: sm.Section) -> bool:
    """An entities section of sentences only: no list, table or sub-heading, and a full stop."""
    return bool(section.blocks) and all(b.kind == "line" for b in section.blocks) \
        and any(re.search(r"[a-z]\.(\s|$)", b.text) for b in section.blocks)


def read_scope(text: str) -> Reading:
    """:func:`analyze`, plus the line coverage that the analyse span records."""
    text = _check_scope(text)
    doc = sm.split_sections(sm.read_blocks(text))
    asker = _Asker()
    feature_items, lead = _section_items(_blocks_of(doc, "features"), sentences=True)
    prose_blocks = [b for b in _blocks_of(doc, "prose") if b.kind in ("line", "item", "row")]
    mined = not any(s.kind == "entities" for s in doc.sections)
    raws, relations, mined = _read_entities(doc, prose_blocks, feature_items, mined)
    if mined and raws:
        asker.ask("entities:prose", "", "yes")        # text filled in below, once entities resolve
    entities = _build_entities(raws, asker)
    if mined and entities:
        asker.questions[0].text = ("I read these entities from the prose: " + "; ".join(
            f"{e.name} ({', '.join(f.name for f in e.fields)})" for e in entities)
            + ". Reply 'yes' or give entity lines like 'Book: title (text, required), author (-> Author)'.")
    if not entities:
        asker.ask("data:none", "The scope names no data the app should keep. Which entities does it "
                  "have? (entity lines like 'Book: title (text, required)')", "")
    features, rules = _features_and_rules(feature_items, prose_blocks, entities)
    integration_items, lead_i = _section_items(_blocks_of(doc, "integrations"))
    integrations = (_integrations_at(integration_items, asker) if integration_items
                    else _integrations_from_prose_at(prose_blocks + _blocks_of(doc, "features")
                                                     + _blocks_of(doc, "constraints")))
    constraint_items, lead_c = _section_items(_blocks_of(doc, "constraints"))
    constraint_items += rules
    summary_blocks = _summary_lines(doc)
    summary = naming.clean_label(" ".join(b.text for b in summary_blocks))[:500]
    title = naming.clean_label(_strip_markdown(doc.title or ""))
    spec = Spec(title=title or _fallback_title(summary), summary=summary, entities=entities,
                features=[f for f, _ in features], integrations=[i for i, _ in integrations],
                constraints=[naming.clean_label(c.text) for c in constraint_items],
                questions=asker.questions, wants_login=False)
    spec.wants_login = _wants_login(spec.features, spec.constraints)
    trace = _Tracer(text.splitlines(), asker)
    trace.title(doc, bool(title))
    trace.entities(entities, raws, mined)
    trace.relations(relations, entities)
    trace.features(features, entities)
    trace.integrations(integrations)
    trace.constraints(constraint_items)
    trace.summary(summary_blocks)
    trace.sentences([b for s in doc.sections for b in s.blocks if b.kind == "line" or s.kind == "prose"],
                    summary_blocks)
    structure = doc.structure | lead | lead_i | lead_c
    trace.not_understood([b for s in doc.sections for b in s.blocks], structure)
    trace.assumptions()
    spec.requirements = trace.found
    recipes.annotate(spec)
    spec.questions = asker.questions
    spec.complexity_score, spec.complexity = score(spec)
    unmapped = req.unmapped_lines(text, spec.requirements, structure)
    return Reading(spec, unmapped, len(req.content_lines(text)))


def describe(spec: Spec) -> str:
    """One line: N entities, M fields, K features (J not buildable offline), complexity X."""
    fields = sum(len(e.fields) for e in spec.entities)
    unbuildable = sum(not f.buildable for f in spec.features)
    return (f"{len(spec.entities)} entities, {fields} fields, {len(spec.features)} features "
            f"({unbuildable} not buildable offline), complexity {spec.complexity}")


# ---------------------------------------------------------------- answers

_YES = {"yes", "y", "ok", "keep", "confirm", "confirmed"}
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _field_at(spec: Spec, where: str, context: str) -> tuple[Entity, Field]:
    entity_name, _, field_name = where.partition(".")
    for entity in spec.entities:
        if entity.name == entity_name:
            for item in entity.fields:
                if item.name == field_name:
                    return entity, item
    raise ScopeError(f"{context}: the spec has no field {where}")


def _answer_field_type(spec: Spec, where: str, answer: str, context: str) -> None:
    entity, target = _field_at(spec, where, context)
    resolver = _Resolver(_lookup_for(spec.entities), _Asker(strict_context=context))
    typed = resolver.field(_RawField(target.label, [answer]), entity.name)
    target.type, target.choices, target.reference = typed.type, typed.choices, typed.reference


def _answer_modifier(spec: Spec, where: str, answer: str, context: str) -> None:
    if _norm(answer) == "ignore":
        return
    _, target = _field_at(spec, where, context)
    reading = _read_modifiers(answer)
    if reading.words:
        raise ScopeError(f"{context}: {' '.join(reading.words)!r} is not a modifier "
                         "(required, optional, unique, min N, max N, default X)")
    _apply_reading(target, reading)


def _drop_if_unreferenced(spec: Spec, name: str) -> None:
    if not any(f.reference == name for e in spec.entities for f in e.fields):
        spec.entities = [e for e in spec.entities if e.name != name]


def _answer_reference(spec: Spec, where: str, answer: str, context: str) -> None:
    _, target = _field_at(spec, where, context)
    created = target.reference
    if _norm(answer) == "create":
        return
    if _norm(answer) == "text":
        target.type, target.reference = "text", None
    else:
        others = {k: v for k, v in _lookup_for(spec.entities).items() if v != created}
        if naming.lookup_key(answer) not in others:
            raise ScopeError(f"{context}: {answer!r} is not 'create', 'text' or an entity "
                             f"({', '.join(sorted(set(others.values()))) or 'none defined'})")
        target.reference = others[naming.lookup_key(answer)]
    if created:
        _drop_if_unreferenced(spec, created)


def _answer_fields(spec: Spec, entity_name: str, answer: str, context: str) -> None:
    try:
        entity = spec.entity(entity_name)
    except KeyError:
        raise ScopeError(f"{context}: the spec has no entity {entity_name}") from None
    raws = _parse_field_items(answer)
    if not raws:
        raise ScopeError(f"{context}: no fields in {answer!r} (write e.g. 'title (text, required)')")
    resolver = _Resolver(_lookup_for(spec.entities), _Asker(strict_context=context))
    defaults = {naming.field_name(raw.label) for raw in _parse_field_items(DEFAULT_FIELDS)}
    kept = [f for f in entity.fields if f.name not in defaults or f.type == "reference"]
    _set_fields(entity, kept + [resolver.field(raw, entity.name) for raw in raws])


def _answer_entities(spec: Spec, _subject: str, answer: str, context: str) -> None:
    if _norm(answer) in _YES:
        return
    raws = _parse_entity_lines([line for line in answer.splitlines() if line.strip()])
    if not raws:
        raise ScopeError(f"{context}: no entity lines in the answer (write e.g. 'Book: title (text)')")
    spec.entities = _build_entities(raws, _Asker(strict_context=context))
    entity_keys = _entity_keys(spec.entities)
    for feature in spec.features:
        feature.entity = _entity_mentioned(feature.text, entity_keys)


def _answer_credentials(spec: Spec, name: str, answer: str, context: str) -> None:
    names = [n for n in re.split(r"[,\s]+", answer.strip()) if n]
    bad = [n for n in names if not _ENV_NAME.match(n) or n.startswith("SCOPEFLOW_")]
    if not names or bad:
        raise ScopeError(f"{context}: credentials must be upper-case variable names like "
                         f"PAYMENT_API_KEY, got {answer!r}")
    for integration in spec.integrations:
        if integration.name == name:
            integration.credentials = names
            return
    raise ScopeError(f"{context}: the spec has no integration {name}")


def _answer_line(_spec: Spec, line: str, answer: str, context: str) -> None:
    if _norm(answer) != "ignore":
        raise ScopeError(f"{context}: line {line} was not understood and an answer cannot build it; rewrite "
                         "the line in the scope and submit it again, or answer 'ignore'")


_ANSWER_HANDLERS = {
    "entities": _answer_entities, "data": _answer_entities, "field_type": _answer_field_type,
    "modifier": _answer_modifier, "reference": _answer_reference, "fields": _answer_fields,
    "credentials": _answer_credentials, "line": _answer_line,
}
_REPLACES_ENTITIES = ("entities", "data")


@dataclass
class AnswerOutcome:
    """What :func:`resolve_answers` did: the new spec and which question ids it used how."""

    spec: Spec
    applied: list[str] = field(default_factory=list)        # answered by the person
    defaults_used: list[str] = field(default_factory=list)  # unanswered: default kept
    ignored: list[str] = field(default_factory=list)        # answer ids matching no question


def resolve_answers(spec: Spec, answers: dict[str, str] | None) -> AnswerOutcome:
    """Apply ``answers`` (question id → text) to a copy of ``spec``; see the module docstring.

    Answers that replace the entities (``entities:``/``data:``) go first; questions about the
    entities they replaced no longer apply and are skipped. The result has no open questions.
    Raises :class:`ScopeError` for an answer that does not fit its question.
    """
    if answers is not None and not isinstance(answers, dict):
        raise ScopeError(f"answers must be an object of question id → text, got {type(answers).__name__}")
    answers = {str(k): "" if v is None else str(v) for k, v in (answers or {}).items()}
    result = AnswerOutcome(Spec.from_data(spec.to_data()))
    ids = {q.id for q in spec.questions}
    result.ignored = sorted(k for k in answers if k not in ids)
    ordered = sorted(result.spec.questions, key=lambda q: q.topic.partition(":")[0] not in _REPLACES_ENTITIES)
    replaced = False
    for question in ordered:
        kind, _, subject = question.topic.partition(":")
        if question.id not in answers:
            result.defaults_used.append(question.id)
            continue
        result.applied.append(question.id)
        answer = answers[question.id].strip()
        if _norm(answer) == _norm(question.default) or (replaced and kind not in ("credentials",)):
            continue
        if kind not in _ANSWER_HANDLERS:
            raise ScopeError(f"answer to {question.id}: cannot apply answers about {question.topic!r}")
        _ANSWER_HANDLERS[kind](result.spec, subject, answer, f"answer to {question.id}")
        replaced = replaced or kind in _REPLACES_ENTITIES
    reconcile_requirements(result.spec, {q: answers[q] for q in result.applied}, "answer")
    result.spec.questions = []
    result.spec.complexity_score, result.spec.complexity = score(result.spec)
    return result


def spec_subjects(spec: Spec) -> set[str]:
    """The requirement subjects the spec's entities and fields can realise."""
    subjects = set()
    for entity in spec.entities:
        subjects.add(f"entity:{entity.name}")
        for item in entity.fields:
            where = f"{entity.name}.{item.name}"
            subjects.add(f"field:{where}")
            for name, applies in (("required", item.required), ("unique", item.unique),
                                  ("default", item.default is not None), ("minimum", item.minimum is not None),
                                  ("maximum", item.maximum is not None)):
                if applies:
                    subjects.add(f"modifier:{where}:{name}")
    return subjects


def reconcile_requirements(spec: Spec, answered: dict[str, str], by: str, status: str = req.UNDERSTOOD) -> None:
    """Keep the requirements true to a spec that answers (or an LLM analyst) changed.

    An answered assumption becomes understood; an entity, field or modifier the spec no longer has
    keeps its line but loses its subject (so it ends ``not built``, with the reason); whatever the
    spec gained gets a new requirement that says where it came from (no scope line).
    """
    subjects = spec_subjects(spec)
    for found in spec.requirements:
        if found.question in answered and found.status == req.ASSUMED:
            found.status, found.assumption = req.UNDERSTOOD, f"answered: {answered[found.question]}"[:300]
        if found.kind in ("entity", "field", "relation", "modifier") and found.subject not in subjects:
            found.subject, found.reason = "", f"not built as read: replaced by the {by}"
    known = {r.subject for r in spec.requirements}
    tracer = _Tracer([], _Asker())
    tracer.found = spec.requirements
    for entity in spec.entities:
        if f"entity:{entity.name}" not in known:
            tracer.add("entity", f"entity {entity.label}", [], f"entity:{entity.name}", status, f"from the {by}")
        for item in entity.fields:
            if f"field:{entity.name}.{item.name}" not in known:
                tracer.field(entity, item, [], status, f"from the {by}")
    known = {r.subject for r in spec.requirements}
    for subject in sorted(subjects - known):          # a modifier an answer added to a known field
        where, name = subject.removeprefix("modifier:").rsplit(":", 1)
        tracer.add("modifier", f"{where} {name}", [], subject, status, f"from the {by}")
    for found in tracer.found:
        if found.line == 0 and not found.source:
            found.source = f"({by})"


def apply_answers(spec: Spec, answers: dict[str, str]) -> Spec:
    """``spec`` with the person's answers applied and no open questions (defaults elsewhere)."""
    return resolve_answers(spec, answers).spec


# ---------------------------------------------------------------- operators

@operator("analyze_scope", retry=NO_RETRY)
def analyze_scope(ctx: TaskContext, scope: str) -> dict[str, Any]:
    """Read the submitted scope into a Spec, with questions for everything it had to guess."""
    try:
        reading = read_scope(scope)
    except ScopeError as exc:
        raise TaskFailure(DESIGN_FLAW, str(exc), {"scope_chars": len(scope) if isinstance(scope, str) else 0}) \
            from None
    # -- LLM analyst (only with SCOPEFLOW_LLM_BASE_URL set): reads prose the parser could not structure
    from scopeflow.handlers import llm_agents

    spec = reading.spec
    settings = llm_agents.settings_from_env()
    if settings is not None and llm_agents.needs_llm_analysis(spec):
        offline = spec
        spec = llm_agents.analyze_with_llm(ctx, settings, scope, spec)
        spec.requirements = offline.requirements
        reconcile_requirements(spec, {}, "LLM analyst", req.ASSUMED)
        ctx.record({"scopeflow.spec.author": llm_agents.LLM_AUTHOR})
    # -- end of the LLM analyst
    statuses = [r.status for r in spec.requirements]
    ctx.record({
        "scopeflow.spec.entities": len(spec.entities),
        "scopeflow.spec.fields": sum(len(e.fields) for e in spec.entities),
        "scopeflow.spec.questions": len(spec.questions),
        "scopeflow.spec.complexity": spec.complexity,
        semconv.REQUIREMENTS_TOTAL: len(spec.requirements),
        semconv.REQUIREMENTS_ASSUMED: statuses.count(req.ASSUMED),
        semconv.REQUIREMENTS_NOT_UNDERSTOOD: statuses.count(req.NOT_UNDERSTOOD),
        semconv.REQUIREMENTS_SCOPE_LINES: reading.content_lines,
        semconv.REQUIREMENTS_UNMAPPED_LINES: len(reading.unmapped_lines),
    })
    return {
        "spec": spec.to_data(),
        "unmapped_lines": reading.unmapped_lines,
        "questions": [{"id": q.id, "text": q.text, "default": q.default, "topic": q.topic} for q in spec.questions],
        "buildable": bool(spec.entities),
        "summary": describe(spec),
    }


@operator("apply_answers", retry=NO_RETRY)
def apply_answers_op(ctx: TaskContext, spec: dict[str, Any], answers: dict[str, Any] | None = None) -> dict[str, Any]:
    """Apply the confirmed answers to the spec; unanswered questions keep their defaults."""
    try:
        outcome = resolve_answers(Spec.from_data(spec), answers)
    except (ScopeError, TypeError) as exc:
        raise TaskFailure(DESIGN_FLAW, f"cannot apply answers: {exc}", {"answers": dict(answers or {})}) from None
    ctx.record({
        "scopeflow.spec.defaults_used": len(outcome.defaults_used),
        "scopeflow.spec.answers_applied": len(outcome.applied),
        "scopeflow.spec.entities": len(outcome.spec.entities),
        "scopeflow.spec.complexity": outcome.spec.complexity,
    })
    return {"spec": outcome.spec.to_data(), "applied": outcome.applied, "ignored": outcome.ignored,
            "defaults_used": outcome.defaults_used}
