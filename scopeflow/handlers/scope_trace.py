"""The requirements of one scope, built in reading order, each with its source lines (and, for a
line of prose, its sentence): the title, entities, fields, modifiers, relations, features,
integrations, constraints, the summary, sentences and lines nobody placed (``not understood``).

Split from :mod:`scopeflow.handlers.scope`, which reads the scope and hands what it found here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scopeflow.handlers import naming
from scopeflow.handlers import requirements as req
from scopeflow.handlers import scope_markdown as sm
from scopeflow.handlers.requirements import Requirement
from scopeflow.handlers.scope_entities import _Asker, _norm, _RawEntity
from scopeflow.handlers.scope_features import _KIND_RULES, _entity_keys
from scopeflow.handlers.scope_relations import Relation
from scopeflow.handlers.scope_relations import sentences as split_sentences
from scopeflow.handlers.scope_rules import role_assumption, role_of
from scopeflow.handlers.spec import Entity, Feature, Field, Integration


@dataclass
class _Item:
    """One item of a features / integrations / constraints / prose section, with its lines."""

    text: str
    line: int
    lines: list[int]
    sentence: str = ""      # set when the item is one sentence of a longer paragraph line


class _Tracer:
    """Builds the requirements of one scope in reading order, each with its source lines."""

    def __init__(self, source: list[str], asker: _Asker):
        self.source, self.asker = source, asker
        self.found: list[Requirement] = []

    def add(self, kind: str, text: str, lines: list[int], subject: str, status: str = req.UNDERSTOOD,
            assumption: str = "", sentence: str = "") -> Requirement:
        numbers = sorted({n for n in lines if n})
        line = numbers[0] if numbers else 0
        found = Requirement(id=f"R-{len(self.found) + 1}", kind=kind, text=text, line=line,
                            source=self.source[line - 1].strip()[:300] if line else "", subject=subject,
                            status=status, assumption=assumption, lines=numbers, sentence=sentence[:300])
        self.found.append(found)
        return found

    def title(self, doc: sm.Document, has_title: bool) -> None:
        if has_title:
            self.add("title", f"the app is called {naming.clean_label(doc.title or '')!r}", [doc.title_line],
                     "title")

    def entities(self, entities: list[Entity], raws: list[_RawEntity], mined: bool) -> None:
        for position, entity in enumerate(entities):
            raw = raws[position] if position < len(raws) else None
            if raw is not None:
                status, why = (req.ASSUMED, "read from prose") if mined else (req.UNDERSTOOD, "")
                line = raw.line
            else:
                referrer = next((r for r in self.found if r.kind == "relation"
                                 and r.subject.startswith("field:") and r.text.endswith(f" {entity.name}")), None)
                status, why = req.ASSUMED, "added because a field refers to it; the scope does not define it"
                line = referrer.line if referrer else 0
            sentence = raw.sentence if raw is not None else ""
            self.add("entity", f"entity {entity.label}", [line], f"entity:{entity.name}", status,
                     f"{why}: guessed from {sentence!r}" if mined and sentence else why, sentence)
            raw_fields = raw.fields if raw is not None else []
            for index, item in enumerate(entity.fields):
                written = raw_fields[index] if index < len(raw_fields) else None
                if written is None:
                    self.field(entity, item, [line], req.ASSUMED, "field added by default (the scope gives none)")
                else:
                    guess = f"{why}: guessed from {written.sentence!r}" if mined and written.sentence else why
                    self.field(entity, item, [written.line or line, *written.more_lines], status, guess,
                               written.sentence)

    def relations(self, relations: list[Relation], entities: list[Entity]) -> None:
        """A requirement for each relation sentence whose reference field was written elsewhere."""
        for relation in relations:
            child = next((e for e in entities if naming.lookup_key(e.label) == naming.lookup_key(relation.child)),
                         None)
            parent_key = naming.lookup_key(relation.parent)
            ref = next((f for f in (child.fields if child else []) if f.type == "reference"
                        and naming.lookup_key(f.reference or "") == parent_key), None)
            if child is None or ref is None or any(r.sentence == relation.sentence for r in self.found):
                continue
            self.add("relation", f"{child.label}.{ref.label} refers to {ref.reference}", [relation.line],
                     f"field:{child.name}.{ref.name}", sentence=relation.sentence)

    def field(self, entity: Entity, item: Field, lines: list[int], status: str, why: str,
              sentence: str = "") -> None:
        where = f"{entity.name}.{item.name}"
        if item.type == "reference":
            self.add("relation", f"{entity.label}.{item.label} refers to {item.reference}", lines,
                     f"field:{where}", status, why, sentence)
        else:
            kind = (f"choice of {', '.join(item.choices)}" if item.type == "choice" else item.type)
            self.add("field", f"{entity.label}.{item.label} ({kind})", lines, f"field:{where}", status, why,
                     sentence)
        modifiers = [("required", item.required, "is required"), ("unique", item.unique, "is unique"),
                     ("default", item.default is not None, f"defaults to {item.default}"),
                     ("minimum", item.minimum is not None, f"is at least {item.minimum:g}"
                      if item.minimum is not None else ""),
                     ("maximum", item.maximum is not None, f"is at most {item.maximum:g}"
                      if item.maximum is not None else "")]
        for name, applies, words in modifiers:
            if applies:
                self.add("modifier", f"{entity.label}.{item.label} {words}", lines, f"modifier:{where}:{name}",
                         status, why, sentence)

    def features(self, features: list[tuple[Feature, _Item]], entities: list[Entity]) -> None:
        keys = set(_entity_keys(entities))
        for number, (feature, item) in enumerate(features, start=1):
            found = self.add("feature", feature.text, item.lines, f"feature:{number}", sentence=item.sentence)
            if feature.kind == "login":
                _only_plain_login(found)
            if (role := role_of(item.text, keys)) is not None:
                found.status, found.assumption = req.ASSUMED, role_assumption(role)

    def integrations(self, integrations: list[tuple[Integration, _Item]]) -> None:
        for integration, item in integrations:
            self.add("integration", f"integration {integration.label}", item.lines,
                     f"integration:{integration.name}", sentence=item.sentence)

    def constraints(self, items: list[_Item]) -> None:
        for number, item in enumerate(items, start=1):
            found = self.add("constraint", naming.clean_label(item.text), item.lines, f"constraint:{number}",
                             sentence=item.sentence)
            found.reason = "the offline templates neither enforce nor test this constraint"
            if dict(_KIND_RULES)["login"].search(item.text):
                _only_plain_login(found)

    def summary(self, blocks: list[sm.Block]) -> None:
        covered = self.covered()
        lines = [b.line for b in blocks if b.line not in covered]
        if lines:
            self.add("summary", "summary: " + naming.clean_label(" ".join(b.text for b in blocks))[:200], lines,
                     "summary")

    def sentences(self, blocks: list[sm.Block], summary: list[sm.Block]) -> None:
        """Each sentence of a paragraph line is a requirement source: one no requirement took is the
        summary (the opening sentences of the first paragraph, before any that asks for something)
        or ``not understood`` (anywhere else)."""
        opening = True
        for block in blocks:
            parts = split_sentences(block.text)
            if len(parts) < 2 or block.line in self.structured_lines():
                opening = opening and block in summary and not self.covers(block)
                continue
            on_line = [r for r in self.found if set(block.lines) & set(r.lines or [r.line])]
            for sentence in parts:
                if any(_takes(r, sentence) for r in on_line):
                    opening = False
                    continue
                if opening and block in summary:
                    self.add("summary", "summary: " + naming.clean_label(sentence)[:200], block.lines, "summary",
                             sentence=sentence)
                    continue
                topic = f"line:{block.line}"
                self.asker.ask(topic, f"line {block.line} ({naming.clean_label(sentence)[:160]!r}): I could not "
                               "tell what the app should do with it, so it is not built. Rewrite it in the scope "
                               "format and submit the scope again, or answer 'ignore'.", "ignore")
                found = self.add("line", naming.clean_label(sentence)[:160], block.lines, topic, req.NOT_UNDERSTOOD,
                                 sentence=sentence)
                found.reason = "the analyst could not place this sentence"

    def covers(self, block: sm.Block) -> bool:
        """Whether a requirement other than the summary covers one of the block's lines."""
        return any(set(block.lines) & set(r.lines or [r.line]) for r in self.found if r.kind != "summary")

    def structured_lines(self) -> set[int]:
        """Lines read as entity lines (``Pet – name, species``): their periods end no sentence."""
        return {r.line for r in self.found if r.kind == "entity" and not r.sentence}

    def covered(self) -> set[int]:
        return {n for r in self.found for n in (r.lines or [r.line])}

    def not_understood(self, blocks: list[sm.Block], structure: set[int]) -> None:
        """Every block line no requirement covers becomes a ``not understood`` requirement with a question."""
        covered = self.covered() | structure
        for block in blocks:
            if block.kind == "structure" or all(n in covered for n in block.lines):
                continue
            text = naming.clean_label(block.text)[:160]
            topic = f"line:{block.line}"
            self.asker.ask(topic, f"line {block.line} ({text!r}): I could not tell what the app should do "
                           "with it, so it is not built. Rewrite it in the scope format and submit the scope "
                           "again, or answer 'ignore'.", "ignore")
            found = self.add("line", text, [n for n in block.lines if n not in covered], topic,
                             req.NOT_UNDERSTOOD)
            found.reason = "the analyst could not place this line"
            covered.update(found.lines)

    def assumptions(self) -> None:
        """Tie each question to the requirements it is about; an understood one becomes ``assumed``."""
        by_subject: dict[str, list[Requirement]] = {}
        for found in self.found:
            by_subject.setdefault(found.subject, []).append(found)
        for question in self.asker.questions:
            kind, _, subject = question.topic.partition(":")
            exact = _EXACT_SUBJECT.get(kind)     # one question per unplaced line: no scan of every requirement
            for found in (by_subject.get(exact + subject, []) if exact else self.found):
                if not _question_covers(kind, subject, found):
                    continue
                found.question = found.question or question.id
                if found.status == req.UNDERSTOOD:
                    found.status, found.assumption = req.ASSUMED, question.text


# Words that ask for more than "signed-in users may use the app": roles and per-user ownership.
_ROLE_WORDS = re.compile(r"\b(admins?|administrators?|agents?|staff|managers?|sellers?|buyers?|owners?|roles?|"
                         r"permissions?|own|their|editors?|moderators?|only (?!logged|signed|authenticated))\b",
                         re.IGNORECASE)


def _only_plain_login(found: Requirement) -> None:
    """A login requirement that also asks for roles or ownership: the templates build plain login."""
    if _ROLE_WORDS.search(found.text):
        found.status = req.ASSUMED
        found.assumption = ("built as plain login: every signed-in user may see and change everything; "
                            "roles and per-user ownership are not built")


def _takes(found: Requirement, sentence: str) -> bool:
    """Whether ``found`` (a requirement on the sentence's line) came from ``sentence``: one read
    sentence by sentence names its sentence; one read from the whole line takes all of them."""
    return not found.sentence or _norm(found.sentence) == _norm(sentence)


_EXACT_SUBJECT = {"field_type": "field:", "modifier": "field:", "reference": "field:",
                  "credentials": "integration:", "line": "line:"}


def _question_covers(kind: str, subject: str, found: Requirement) -> bool:
    if kind in ("field_type", "modifier", "reference"):
        return found.subject == f"field:{subject}"
    if kind == "fields":
        return found.subject == f"entity:{subject}" or (found.subject.startswith(f"field:{subject}.")
                                                        and found.status == req.ASSUMED)
    if kind == "entities":
        return found.kind == "entity"
    if kind == "credentials":
        return found.subject == f"integration:{subject}"
    if kind == "line":
        return found.subject == f"line:{subject}"
    return False
