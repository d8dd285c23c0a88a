"""Entities and fields as the scope writes them: field syntaxes, types, modifiers, and the reader
that walks an entities section's markdown blocks (items, sub-headings, bold lines, tables).

Split from :mod:`scopeflow.handlers.scope` (the analyst) so that module keeps the reading of a
whole scope and its requirements; ``scope`` re-exports what other modules use from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from scopeflow.handlers import naming
from scopeflow.handlers import scope_markdown as sm
from scopeflow.handlers.spec import Entity, Field, Question

DEFAULT_FIELDS = "name (text, required)"


class ScopeError(ValueError):
    """A scope (or an answer) that cannot be analysed; the message is one line."""


# ---------------------------------------------------------------- types and modifiers

TYPE_SYNONYMS = {
    "text": "text", "string": "text", "str": "text", "varchar": "text", "char": "text",
    "short text": "text", "line": "text",
    "long text": "long_text", "longtext": "long_text", "text area": "long_text",
    "textarea": "long_text", "markdown": "long_text", "rich text": "long_text",
    "paragraph": "long_text", "multiline": "long_text",
    "integer": "integer", "int": "integer", "number": "integer", "whole number": "integer",
    "count": "integer",
    "decimal": "decimal", "float": "decimal", "double": "decimal", "money": "decimal",
    "price": "decimal", "currency": "decimal", "numeric": "decimal", "real": "decimal",
    "boolean": "boolean", "bool": "boolean", "yes no": "boolean", "flag": "boolean",
    "checkbox": "boolean",
    "date": "date", "day": "date",
    "datetime": "datetime", "date time": "datetime", "date and time": "datetime",
    "timestamp": "datetime",
    "email": "email", "e mail": "email", "email address": "email",
    "url": "url", "link": "url", "uri": "url", "website": "url", "web address": "url",
    "texte": "text", "texto": "text", "zeichenkette": "text", "chaîne": "text", "cadena": "text",
    "zahl": "integer", "ganzzahl": "integer", "entier": "integer", "entero": "integer",
    "datum": "date", "fecha": "date", "booléen": "boolean", "booleano": "boolean",
    "dezimal": "decimal", "décimal": "decimal", "betrag": "decimal", "kommazahl": "decimal",
    "datum und uhrzeit": "datetime", "zeitpunkt": "datetime", "wahrheitswert": "boolean",
    "choice": "choice", "choices": "choice", "enum": "choice", "one of": "choice",
    "options": "choice", "select one": "choice",
}
_REFERENCE_PREFIX = re.compile(
    r"^(?:->|→|=>|(?:ref|refs|reference|references|refers|reference to|refers to|belongs to|"
    r"link to|links to|fk)\b)\s*:?\s*", re.IGNORECASE)
_CHOICE_PREFIX = re.compile(r"^(?:choice|choices|enum|one of|options?)\b\s*[:=]?\s*", re.IGNORECASE)
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
_RANGE = re.compile(r"^(-?\d+(?:\.\d+)?)\s*(?:\.\.|–)\s*(-?\d+(?:\.\d+)?)$")
_MODIFIER_WORDS = {"required", "mandatory", "optional", "nullable", "unique", "distinct", "default",
                   "defaults", "min", "minimum", "max", "maximum", "maxlength", "minlength"}


# ``Name (Pflicht)``, ``nom (obligatoire)``, ``nombre (obligatorio)``: required in the scope's own language
_REQUIRED_WORDS = {"required", "mandatory", "pflicht", "pflichtfeld", "erforderlich", "obligatoire", "obligatorio",
                   "requerido"}
_FILLER_WORDS = {"must", "be", "should", "is", "are", "always", "shall", "has", "to"}
_UNIT_WORDS = {"chars", "characters", "char", "letters", "zeichen", "caractères", "digits"}


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[_\-/]+", " ", text.lower()).split())


@dataclass
class _Reading:
    """What one comma-separated piece of a field spec said."""

    words: list[str] = field(default_factory=list)   # type / reference target / unknown words
    required: bool | None = None
    unique: bool = False
    default: str | None = None
    minimum: float | None = None
    maximum: float | None = None


def _read_modifiers(text: str) -> _Reading:
    """Split ``text required max 200 default x`` into modifiers and the words left over."""
    text = re.sub(r"\b(default|min|max|minimum|maximum)\s*[:=]\s*", r"\1 ", text, flags=re.IGNORECASE)
    text = re.sub(r"\bmax(?:imum)?[\s_]*length\b", "max", text, flags=re.IGNORECASE)
    words, reading, i = text.split(), _Reading(), 0
    while i < len(words):
        word = words[i].lower().strip(",;")
        nxt = words[i + 1].lower() if i + 1 < len(words) else ""
        if word in _REQUIRED_WORDS or (word == "not" and nxt == "null"):
            reading.required, i = True, i + (2 if word == "not" else 1)
        elif word in ("optional", "nullable", "facultatif", "opcional", "freiwillig"):
            reading.required, i = False, i + 1
        elif word in ("unique", "distinct", "eindeutig", "único", "unico"):
            reading.unique, i = True, i + 1
        elif word in ("default", "defaults"):
            rest = words[i + 1:]
            if rest and rest[0].lower() == "to":
                rest = rest[1:]
            reading.default = " ".join(rest).strip("'\"") or None
            break
        elif word in ("min", "minimum", "minlength", ">=", "≥") and _NUMBER.match(nxt):
            reading.minimum, i = float(nxt), i + 2
        elif word in ("max", "maximum", "maxlength", "<=", "≤") and _NUMBER.match(nxt):
            reading.maximum, i = float(nxt), i + 2
        elif word in ("at", "up") and nxt in ("least", "most", "to") and i + 2 < len(words) \
                and _NUMBER.match(words[i + 2]):
            value = float(words[i + 2])
            if nxt == "least":
                reading.minimum = value
            else:
                reading.maximum = value
            i += 3
        elif word == "between" and i + 3 < len(words) and _NUMBER.match(nxt) \
                and words[i + 2].lower() in ("and", "-", "to") and _NUMBER.match(words[i + 3]):
            reading.minimum, reading.maximum, i = float(nxt), float(words[i + 3]), i + 4
        elif (match := _RANGE.match(word)) is not None:
            reading.minimum, reading.maximum, i = float(match[1]), float(match[2]), i + 1
        elif word in _UNIT_WORDS and (reading.minimum is not None or reading.maximum is not None):
            i += 1                                    # ``max 100 chars``: the unit says nothing more
        elif word in _FILLER_WORDS:
            i += 1                                    # ``must be unique``
        else:
            reading.words.append(words[i])
            i += 1
    return reading


def _slash_choice(words: str) -> bool:
    """``scheduled / done / cancelled``: two or more short values that are no type (``yes/no`` is one)."""
    values = [v.strip() for v in words.split("/")]
    return (len(values) > 1 and all(v and len(v.split()) <= 3 for v in values)
            and _norm(words) not in TYPE_SYNONYMS)


_IDENTIFIER_WORDS = {"serial", "insurance", "reference", "tracking", "registration", "licence", "license", "passport",
                     "vat", "tax", "account", "frame", "membership", "policy", "social", "chassis", "part", "model"}


def _infer_type(name: str) -> str:
    """A type from a field's name alone (``due_date`` → date), for fields written without one."""
    words = set(name.split("_"))
    if words >= {"date", "time"}:
        return "datetime"
    if words & {"group", "type", "kind", "category", "level", "class"}:
        return "text"                                 # ``age group`` is no age, ``price category`` no price
    if words & {"email"} or name in ("e_mail", "mail", "correo", "correo_electronico", "courriel"):
        return "email"
    if words & {"phone", "mobile", "telephone", "tel", "zip", "postcode", "iban", "isbn", "sku"}:
        return "text"
    if "number" in words and words & _IDENTIFIER_WORDS:       # ``serial number`` is a code, not a quantity
        return "text"
    if words & {"url", "website", "link", "homepage"}:
        return "url"
    if name.endswith("_at") or words & {"timestamp"}:
        return "datetime"
    if words & {"date", "deadline", "due", "birthday", "dob", "datum", "fecha"} or name.endswith("datum"):
        return "date"
    if words & {"price", "amount", "cost", "total", "salary", "budget", "balance", "fee", "rate",
                 "rent", "deposit", "temperature", "weight", "height", "width", "distance",
                 "kosten", "preis", "betrag", "precio", "coste", "prix"}:
        return "decimal"
    if words & {"time", "starts", "ends"}:
        return "datetime"
    if words & {"count", "quantity", "qty", "age", "pages", "stock", "number", "year", "rating", "minutes",
                "hours", "duration", "seats", "capacity"}:
        return "integer"
    if name.startswith(("is_", "has_")) or words & {"active", "done", "completed", "enabled", "published"}:
        return "boolean"
    if words & {"description", "notes", "body", "content", "bio", "summary", "comment", "details"}:
        return "long_text"
    return "text"


# ---------------------------------------------------------------- questions

class _Asker:
    """Collects questions with stable ids; in strict mode (answers) a question is an error."""

    def __init__(self, strict_context: str | None = None, start: int = 1):
        self.questions: list[Question] = []
        self._topics: set[str] = set()
        self.strict_context = strict_context
        self.next_id = start

    def ask(self, topic: str, text: str, default: str) -> None:
        if self.strict_context is not None:
            raise ScopeError(f"{self.strict_context}: {text}")
        if topic in self._topics:
            return
        self._topics.add(topic)
        self.questions.append(Question(id=f"q{self.next_id}", text=text, default=default, topic=topic))
        self.next_id += 1


# ---------------------------------------------------------------- field and entity syntax

def _split_top_level(text: str, separators: str = ",;") -> list[str]:
    """Split on separators outside parentheses (so ``title (text, required)`` stays whole)."""
    parts, depth, current = [], 0, []
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}" and depth > 0
        if ch in separators and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


@dataclass
class _RawField:
    """A field as written, before types and references are resolved."""

    label: str
    pieces: list[str] = field(default_factory=list)   # comma-separated parts of its spec
    line: int = 0                                      # scope line it was written on
    more_lines: list[int] = field(default_factory=list)   # lines that added modifiers (sub-bullets)
    sentence: str = ""                                 # the sentence it was read from, in a line of prose


@dataclass
class _RawEntity:
    label: str
    fields: list[_RawField] = field(default_factory=list)
    line: int = 0
    sentence: str = ""                                 # the sentence it was read from, in a line of prose


# where a field's name ends: ``name (``, ``name:``, ``name —``, ``name -> X``, ``name ref X``
_NAME_END = re.compile(r"\s*(?:\(|:|—|–|\s-\s|->|→|=>|\s(?=(?:ref|refs|references|refers to|reference to|"
                       r"belongs to|links? to)\s))", re.IGNORECASE)
_KEEPS_SEPARATOR = ("(", "->", "→", "=>", "")


def _field_pieces(rest: str) -> list[str]:
    """``string (required, max 80)`` → ``string``, ``required``, ``max 80``; ``-> X (required)`` too;
    ``one of a, b, c`` becomes one ``one of a|b|c`` piece."""
    outside, inside, depth, current = [], [], 0, []
    for ch in rest:
        if ch == "(" and depth == 0:
            outside.append("".join(current))
            current, depth = [], 1
        elif ch == ")" and depth == 1:
            inside.extend(_split_top_level("".join(current)))
            current, depth = [], 0
        else:
            depth += (ch == "(") - (ch == ")" and depth > 1)
            current.append(ch)
    (inside if depth else outside).append("".join(current))
    pieces = [p for part in outside for p in _split_top_level(part)] + inside
    return _merge_choices([p.strip() for p in pieces if p.strip()])


def _merge_choices(pieces: list[str]) -> list[str]:
    merged: list[str] = []
    for piece in pieces:
        previous = merged[-1] if merged else ""
        is_choice = bool(_CHOICE_PREFIX.match(previous))
        bare = len(piece.split()) <= 3 and piece.split()[0].lower() not in _MODIFIER_WORDS \
            and _norm(piece) not in TYPE_SYNONYMS
        if is_choice and bare and _CHOICE_PREFIX.sub("", previous).strip():
            merged[-1] = previous + " | " + piece
        else:
            merged.append(piece)
    return [re.sub(r"^((?:one of|choice|choices|enum|options?)\b\s*[:=]?\s*)([^|]+?)\s*$",
                   lambda m: m[1] + m[2].replace(" or ", " | "), p, flags=re.IGNORECASE)
            if _CHOICE_PREFIX.match(p) and "|" not in p and " or " in p else p for p in merged]


def _parse_field_item(item: str, line: int = 0) -> _RawField | None:
    """One field in any of the syntaxes: ``title (text, required)``, ``title: string (required)``,
    ``title — text, required``, ``author -> Author (required)``, ``author ref Author``, ``title``."""
    item = _strip_markdown(item).strip(" .")
    match = _NAME_END.search(item)
    if match is None or match.start() == 0:
        name, rest = item, ""
    else:
        name = item[:match.start()]
        rest = item[match.start():] if match.group(0).strip() in _KEEPS_SEPARATOR else item[match.end():]
    name = name.strip(" .-*")
    return _RawField(name, _field_pieces(rest), line) if name else None


def _parse_field_items(text: str, line: int = 0) -> list[_RawField]:
    """A comma-separated field list; a bare modifier (``required``) belongs to the field before it."""
    fields: list[_RawField] = []
    for item in _split_top_level(text):
        item = _strip_markdown(item).strip(" .")
        first = item.split()[0].lower().strip(":") if item.split() else ""
        if first in _MODIFIER_WORDS and fields and "(" not in item:
            fields[-1].pieces.append(item)
            continue
        raw = _parse_field_item(item, line)
        if raw is not None:
            fields.append(raw)
    return fields


def _strip_markdown(text: str) -> str:
    return re.sub(r"(\*\*|__|`)", "", text).strip()


def _parse_entity_line(text: str, line: int = 0) -> _RawEntity | None:
    """``Book: fields…``, ``Book — fields…``, ``Book - fields…``, ``Book (fields…)`` or ``Book``."""
    sep = re.search(r":|—|–|\s-\s", text)
    paren = text.find("(")
    closed_before = sep is not None and text[:sep.start()].count("(") == text[:sep.start()].count(")")
    if sep and (paren == -1 or sep.start() < paren or closed_before):   # ``X (old name): fields``
        name, rest = text[:sep.start()], text[sep.end():]
    elif paren > 0 and text.rstrip().endswith(")"):
        name, rest = text[:paren], text[paren + 1:text.rstrip().rfind(")")]
    else:
        name, rest = text, ""
    name = _strip_markdown(name).strip(" .")
    if closed_before and re.sub(r"\s\([^()]*\)", "", name).strip():   # ``Animal (aka beast): …``: a note
        name = re.sub(r"\s+\([^()]*\)", "", name).strip()           # (``alert(1)`` is part of the name)
    if _is_description(rest):           # ``Loan: a record of who borrowed which book``
        rest = ""
    return _RawEntity(name, _parse_field_items(rest, line), line) if name else None


def _is_sentence(text: str) -> bool:
    """A sentence rather than an entity line: opens with an article or pronoun, no separator."""
    words = text.split()
    return (len(words) > 3 and words[0].lower() in ("a", "an", "the", "each", "every", "one", "all", "any", "our",
                                                      "we", "it", "they", "there", "i", "this")
            and not re.search(r"[:—–(]|\s-\s|->|→", text))


def _is_description(text: str) -> bool:
    """Prose about an entity rather than its fields: starts with an article, no list, no types."""
    words = text.split()
    return (len(words) > 3 and words[0].lower() in ("a", "an", "the", "one", "each", "any", "some")
            and not re.search(r"[,;(]|->|→", text))


# ---------------------------------------------------------------- entities from markdown blocks

_YES_CELLS = {"yes", "y", "true", "x", "✓", "✔", "required", "ja", "oui", "sí", "si", "1", "mandatory"}
_ENTITY_COLUMNS = {"entity", "entities", "model", "table", "object", "resource", "entität", "entité", "entidad",
                   "thing", "record"}
_FIELD_COLUMNS = {"field", "fields", "name", "attribute", "attributes", "column", "columns", "feld", "felder",
                  "champ", "champs", "campo", "campos", "property", "properties"}
_TYPE_COLUMNS = {"type", "datatype", "data type", "typ", "tipo", "kind"}
_REQUIRED_COLUMNS = {"required", "mandatory", "req", "required?", "pflicht", "obligatoire", "obligatorio"}


_ENTITY_NAME = re.compile(r"^[^\W\d_][\w ]{0,40}?(?:\s*\(.*\))?$")


def _is_entity_list(text: str) -> bool:
    """``Note (title, body), Tag (name)`` or ``Book, Author``: several entities on one line."""
    pieces = _split_top_level(text)
    return len(pieces) > 1 and all(_ENTITY_NAME.match(p) and p[:1].isupper() for p in pieces) \
        and not re.search(r":|—|–|\s-\s", text.split("(")[0])


@dataclass
class _EntityReader:
    """Walks the blocks of an entities section: which entity (and field) the next block belongs to."""

    raws: list[_RawEntity] = field(default_factory=list)
    open_entity: _RawEntity | None = None      # opened by a heading or a label: items are its fields
    item_entity: _RawEntity | None = None      # opened by a top-level item: sub-items are its fields
    header: list[str] = field(default_factory=list)
    used: set[int] = field(default_factory=set)   # lines that produced something

    def read(self, blocks: list[sm.Block]) -> list[_RawEntity]:
        for block in blocks:
            handler = getattr(self, f"_{block.kind}", None)
            if handler is not None:
                handler(block)
        return self.raws

    def _new(self, raw: _RawEntity | None, opened_by_label: bool) -> None:
        if raw is None:
            return
        self.raws.append(raw)
        self.used.add(raw.line)
        self.open_entity, self.item_entity = (raw, None) if opened_by_label else (None, raw)

    def _heading(self, block: sm.Block) -> None:
        self._new(_RawEntity(_strip_markdown(block.text).strip(" :"), line=block.line), True)

    def _line(self, block: sm.Block) -> None:
        text = block.text.strip()
        if block.bold or (text.endswith(":") and len(text.split()) <= 4):
            self._new(_RawEntity(text.strip(" :*"), line=block.line), True)
        elif text.endswith(":"):         # ``Example of a snippet we store:``: a lead-in sentence, no entity
            return
        elif self.open_entity is not None and not (self.open_entity.fields and re.match(r"^[A-Z]\w*\s*[:—–]", text)):
            self._fields(self.open_entity, text, block.line)
        elif _is_entity_list(text):      # ``Note (title, body), Tag (name)`` after ``Entities:``
            for piece in _split_top_level(text):
                self._new(_parse_entity_line(piece, block.line), False)
        elif _is_sentence(text):         # ``Each pet belongs to a galaxy.``: no entity line
            return
        else:
            self._new(_parse_entity_line(text, block.line), False)

    def _item(self, block: sm.Block) -> None:
        text = _strip_markdown(block.text)
        if len(block.parts) > 1 and len(block.parts) == len(block.lines) \
                and all(p.count("(") == p.count(")") for p in block.parts):
            return self._wrapped_item(block)
        owner = self.open_entity or self.item_entity
        if block.level == 1 and self.open_entity is None:
            self._new(_parse_entity_line(text, block.line), False)
        elif owner is not None and (block.level == 1 or (block.level == 2 and self.open_entity is None)):
            self._fields(owner, text, block.line)
        elif owner is not None and owner.fields:      # deeper: modifiers of the last field
            owner.fields[-1].pieces.extend(_field_pieces(text))
            owner.fields[-1].more_lines.append(block.line)
            self.used.add(block.line)

    def _wrapped_item(self, block: sm.Block) -> None:
        """An item wrapped over several lines: its first line as an item, each further line as the
        fields (or modifiers) it lists, with its own line number."""
        parts = [_strip_markdown(p).strip().rstrip(",;") for p in block.parts]
        self._item(sm.Block("item", parts[0], block.line, [block.line], level=block.level))
        owner = self.open_entity or self.item_entity
        for part, line in zip(parts[1:], block.lines[1:], strict=True):
            if owner is not None and part:
                self._fields(owner, part, line)
        return None

    def _fields(self, owner: _RawEntity, text: str, line: int) -> None:
        single = re.search(r"\b(one of|choices?|enum|options?)\b", text, re.IGNORECASE) and "(" not in text
        found = ([raw] if (raw := _parse_field_item(text, line)) else []) if single else _parse_field_items(text, line)
        owner.fields.extend(found)
        if found:
            self.used.add(line)

    def _header(self, block: sm.Block) -> None:
        self.header = [_norm(_strip_markdown(cell)).strip(" ?") for cell in block.cells]
        self.used.add(block.line)

    def _row(self, block: sm.Block) -> None:
        cells = dict(zip(self.header, (_strip_markdown(c) for c in block.cells), strict=False))
        entity_col = next((c for c in self.header if c in _ENTITY_COLUMNS), None)
        field_col = next((c for c in self.header if c in _FIELD_COLUMNS), None)
        if entity_col and field_col in ("fields", "attributes", "columns", "felder", "champs", "campos",
                                        "properties"):
            self._new(_parse_entity_line(f"{cells.get(entity_col, '')}: {cells.get(field_col, '')}",
                                         block.line), False)
            return
        if entity_col and cells.get(entity_col) and (self.item_entity is None or naming.lookup_key(
                cells[entity_col]) != naming.lookup_key(self.item_entity.label)):
            self._new(_RawEntity(cells[entity_col], line=block.line), False)
        owner = self.item_entity if entity_col else (self.open_entity or self.item_entity)
        if owner is None or field_col is None or not cells.get(field_col):
            return
        owner.fields.append(self._row_field(cells, field_col, block.line))
        self.used.add(block.line)

    def _row_field(self, cells: dict[str, str], field_col: str, line: int) -> _RawField:
        pieces: list[str] = []
        for column, value in cells.items():
            if column == field_col or column in _ENTITY_COLUMNS or not value.strip(" -–—"):
                continue
            if column in _TYPE_COLUMNS:
                pieces = _field_pieces(value) + pieces
            elif column in _REQUIRED_COLUMNS or column.startswith("required"):
                pieces.append("required" if _norm(value) in _YES_CELLS else "optional")
            elif column in ("unique", "eindeutig"):
                pieces.extend(["unique"] if _norm(value) in _YES_CELLS else [])
            elif column in ("default", "default value"):
                pieces.append(f"default {value}")
            else:                                   # notes / constraints / modifiers
                pieces.extend(_field_pieces(value))
        return _RawField(cells[field_col].strip(), pieces, line)


def _parse_entity_lines(lines: list[str]) -> list[_RawEntity]:
    """Entities from entity lines in any of the scope's syntaxes (used for answers)."""
    blocks = sm.read_blocks("\n".join(lines))
    return _EntityReader().read([b for b in blocks if b.kind != "structure"])


def _apply_reading(target: Field, reading: _Reading) -> None:
    if reading.required is not None:
        target.required = reading.required
    target.unique = target.unique or reading.unique
    for attr in ("default", "minimum", "maximum"):
        if getattr(reading, attr) is not None:
            setattr(target, attr, getattr(reading, attr))


@dataclass
class _Resolver:
    """Turns raw fields into typed ``Field``s against the entities known so far."""

    lookup: dict[str, str]                 # naming.lookup_key(label or name) → Entity.name
    asker: _Asker
    missing: dict[str, str] = field(default_factory=dict)   # entity name to create → label

    def field(self, raw: _RawField, owner: str) -> Field:
        label = naming.clean_label(raw.label)
        result = Field(name=naming.field_name(label), label=label, type="text")
        where = f"{owner}.{result.name}"
        type_words, reference, unknown, bare_reference = None, None, [], False
        for piece in raw.pieces:
            ref = _REFERENCE_PREFIX.match(piece)
            choice = None if ref else _CHOICE_PREFIX.match(piece)
            reading = _read_modifiers(piece[(ref or choice).end():] if (ref or choice) else piece)
            _apply_reading(result, reading)
            words = " ".join(reading.words).strip()
            if ref and words:
                reference = words
            elif ref:                     # ``reference`` alone (a table's notes): the type names the target
                bare_reference = True
            elif (choice and words) or "|" in words or _slash_choice(words):
                words = words.replace("/", "|")
                result.type = "choice"
                result.choices = [c.strip(" ()[]'\"") for c in words.split("|") if c.strip(" ()[]'\"")]
            elif choice and type_words is None:
                type_words = "choice without values"
            elif words and type_words is None:
                type_words = words
            elif words:
                unknown.append(words)
        if reference is None and bare_reference:
            reference, type_words = type_words or label, None
        if type_words == "choice without values" and unknown:     # ``choice`` then ``open, done``
            result.type, result.choices, unknown = "choice", [c.strip(" '\"") for c in unknown], []
        self._resolve_type(result, where, type_words, reference)
        for words in unknown:
            self.asker.ask(f"modifier:{where}", f"{where}: what does {words!r} mean? (ignored for now)", "ignore")
        self._check_bounds(result, where)
        return result

    def _resolve_type(self, result: Field, where: str, type_words: str | None, reference: str | None) -> None:
        if reference is not None:
            self._reference(result, where, reference)
        elif result.type == "choice":
            return
        elif type_words is None and self._names_entity(result, where):
            self._reference(result, where, result.label)
        elif type_words is None:
            result.type = _infer_type(result.name)
        elif (known := TYPE_SYNONYMS.get(_norm(type_words))) and known != "choice":
            result.type = known
        elif naming.lookup_key(type_words) in self.lookup:
            self._reference(result, where, type_words)
        else:
            self.asker.ask(f"field_type:{where}",
                           f"{where}: unknown type {type_words!r}; which type (or entity) is it?", "text")

    def _names_entity(self, result: Field, where: str) -> bool:
        """``owner`` in ``Pet: name, owner`` when the scope defines Owner: a reference by its name."""
        key = naming.lookup_key(result.label)
        return key in self.lookup and self.lookup[key] != where.split(".")[0]

    def _reference(self, result: Field, where: str, target: str) -> None:
        key = naming.lookup_key(target)
        result.type = "reference"
        if key in self.lookup:
            result.reference = self.lookup[key]
            return
        name = naming.entity_name(naming.clean_label(target))
        result.reference = name
        self.missing.setdefault(name, naming.clean_label(target))
        self.lookup[key] = name
        self.asker.ask(f"reference:{where}",
                       f"{where} refers to {target!r}, which the scope does not define; I added entity "
                       f"{name} with a name. Answer 'create', 'text' or another entity's name.", "create")

    def _check_bounds(self, result: Field, where: str) -> None:
        if result.minimum is not None and result.maximum is not None and result.minimum > result.maximum:
            self.asker.ask(f"modifier:{where}", f"{where}: min {result.minimum:g} is above max "
                           f"{result.maximum:g}; both dropped. Which bounds apply?", "ignore")
            result.minimum = result.maximum = None


def _lookup_for(entities: list[Entity]) -> dict[str, str]:
    lookup: dict[str, str] = {}
    for entity in entities:
        for alias in (entity.label, entity.name, entity.table):
            lookup.setdefault(naming.lookup_key(alias), entity.name)
    return lookup


def _build_entities(raws: list[_RawEntity], asker: _Asker, known: tuple[Entity, ...] = ()) -> list[Entity]:
    """Entities with resolved fields; references to undefined entities create them (default)."""
    labels = [naming.clean_label(raw.label) for raw in raws]
    taken = [e.name for e in known]
    names = naming.dedupe([*taken, *(naming.entity_name(label) for label in labels)])[len(taken):]
    entities = [Entity(name, label, naming.table_name(name)) for name, label in zip(names, labels, strict=True)]
    resolver = _Resolver(_lookup_for([*known, *entities]), asker)
    for entity, raw in zip(entities, raws, strict=True):
        _set_fields(entity, [resolver.field(f, entity.name) for f in raw.fields])
    for name, label in resolver.missing.items():
        entities.append(Entity(name, label, naming.table_name(name),
                               [Field("name", "Name", "text", required=True)]))
    for entity in entities:
        if all(f.type == "reference" for f in entity.fields):
            defaults = [resolver.field(f, entity.name) for f in _parse_field_items(DEFAULT_FIELDS)]
            _set_fields(entity, entity.fields + defaults)
            asker.ask(f"fields:{entity.name}", f"{entity.name} has no fields of its own; I gave it "
                      f"{DEFAULT_FIELDS!r}. Which fields should it have?", DEFAULT_FIELDS)
    return entities


def _set_fields(entity: Entity, fields: list[Field]) -> None:
    for item, name in zip(fields, naming.dedupe(f.name for f in fields), strict=True):
        item.name = name
    entity.fields = fields
