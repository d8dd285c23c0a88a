"""Safe identifiers from whatever a person typed.

A scope says ``Café Ünïcode``, ``class`` or ``<b>Order</b>``; generated code needs names that are
ASCII, never start with a digit, and never collide with Python keywords, shadowed builtins, SQL
reserved words or names the generated app already uses. This module owns that conversion:

- :func:`clean_label` keeps what the person wrote (unicode, HTML untouched: escaping is the
  renderer's job) minus control and invisible format characters;
- :func:`entity_name` → PascalCase class name, :func:`field_name` → snake_case column name,
  :func:`table_name` → snake_case plural;
- :func:`dedupe` gives later duplicates ``_2``, ``_3`` … suffixes.

Reserved names get a suffix rather than being refused: a SQL reserved word or a name the app
reserves becomes ``<name>_field`` (``order`` → ``order_field``, ``id`` → ``id_field``); a Python
keyword or shadowed builtin becomes ``<name>_`` (``class`` → ``class_``, ``type`` → ``type_``); an
entity whose class name is a Python keyword or one the app defines gets ``Entity`` appended
(``None`` → ``NoneEntity``, ``Session`` → ``SessionEntity``).
"""

from __future__ import annotations

import keyword
import re
import unicodedata
from collections.abc import Iterable

from anyascii import anyascii

# Letters NFKD does not decompose into ASCII.
_TRANSLITERATE = str.maketrans({
    "ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe", "Œ": "OE", "đ": "d", "Đ": "D",
    "ł": "l", "Ł": "L", "þ": "th", "Þ": "Th", "ð": "d", "Ð": "D", "ı": "i",
})

SHADOWED_BUILTINS = frozenset({
    "all", "any", "bool", "bytes", "callable", "compile", "dict", "dir", "eval", "exec", "filter",
    "float", "format", "globals", "hash", "help", "input", "int", "iter", "len", "list", "locals",
    "map", "max", "min", "next", "object", "open", "print", "property", "range", "repr", "round",
    "set", "slice", "sorted", "str", "sum", "super", "tuple", "type", "vars", "zip",
})
SQL_RESERVED = frozenset({
    "all", "alter", "and", "as", "asc", "between", "by", "case", "check", "column", "constraint",
    "create", "cross", "current", "default", "delete", "desc", "distinct", "drop", "else", "end",
    "except", "exists", "foreign", "from", "full", "grant", "group", "groups", "having", "in",
    "index", "inner", "insert", "intersect", "into", "is", "join", "key", "left", "like", "limit",
    "natural", "not", "null", "offset", "on", "or", "order", "outer", "primary", "references",
    "right", "row", "rows", "select", "session_user", "set", "table", "then", "to", "union",
    "unique", "update", "user", "using", "values", "when", "where", "window", "with",
})
APP_RESERVED_FIELDS = frozenset({
    "id", "query", "metadata", "created_at", "updated_at", "registry", "session", "form", "request",
    "app", "db", "self", "cls", "to_dict", "to_data",
})
APP_RESERVED_CLASSES = frozenset({
    "Base", "Model", "Query", "Session", "Flask", "Blueprint", "Config", "Metadata", "Form",
    "Request", "Response", "Column", "Table",
})

_IRREGULAR_SINGULAR = {
    "people": "person", "children": "child", "men": "man", "women": "woman", "mice": "mouse",
    "movies": "movie", "cookies": "cookie", "series": "series", "species": "species", "news": "news",
    "data": "data", "statuses": "status", "indices": "index", "criteria": "criterion",
}
_IRREGULAR_PLURAL = {single: plural for plural, single in _IRREGULAR_SINGULAR.items()}
_INVARIANT_ENDINGS = ("ss", "us", "is", "ics")


def clean_label(text: str) -> str:
    """``text`` as written, minus control/format characters, with whitespace collapsed."""
    kept = "".join(ch for ch in str(text) if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"))
    return " ".join(kept.split())


def ascii_words(label: str) -> list[str]:
    """The ASCII words of ``label``: HTML tags dropped, transliterated, split on anything else and
    on camelCase. Latin letters lose their accents; other scripts are spelled out by ``anyascii``
    (``顧客`` → ``GuKe``, ``Заказ`` → ``Zakaz``), so a scope in Chinese or Russian gets names a reader can
    tell apart instead of ``Entity`` and ``field_2``; symbols and emoji name nothing."""
    text = re.sub(r"</?[A-Za-z][^<>]*>", " ", clean_label(label))      # markup is not part of a name
    text = unicodedata.normalize("NFKD", text.translate(_TRANSLITERATE))
    text = "".join(" " if not ch.isascii() and unicodedata.category(ch).startswith("S") else ch for ch in text)
    text = anyascii(text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", text)
    return [w for w in re.split(r"[^A-Za-z0-9]+", text) if w]


def singular(word: str) -> str:
    """English singular of one word, for entity names written in the plural (``Books``)."""
    lower = word.lower()
    if lower in _IRREGULAR_SINGULAR:
        return _match_case(word, _IRREGULAR_SINGULAR[lower])
    if lower.endswith(_INVARIANT_ENDINGS) or len(lower) <= 3:
        return word
    if lower.endswith("ies"):
        return word[:-3] + ("Y" if word[-3:].isupper() else "y")
    if lower.endswith(("sses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if lower.endswith("s"):
        return word[:-1]
    return word


def plural(word: str) -> str:
    """English plural of one lower-case word, for table names."""
    if word in _IRREGULAR_PLURAL:
        return _IRREGULAR_PLURAL[word]
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


def _match_case(original: str, replacement: str) -> str:
    return replacement.capitalize() if original[:1].isupper() else replacement


def snake_case(label: str) -> str:
    """``Due Date`` / ``dueDate`` / ``due-date`` → ``due_date`` (may be empty for non-Latin text)."""
    return "_".join(w.lower() for w in ascii_words(label))


def pascal_case(label: str) -> str:
    """``book shelf`` / ``book_shelf`` → ``BookShelf`` (may be empty for non-Latin text)."""
    return "".join(w[:1].upper() + w[1:] for w in ascii_words(label))


def _safe_snake(name: str) -> str:
    if name in SQL_RESERVED or name in APP_RESERVED_FIELDS:
        return name + "_field"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in SHADOWED_BUILTINS:
        return name + "_"
    return name


def field_name(label: str, fallback: str = "field") -> str:
    """A snake_case column name for ``label`` that is safe in Python, SQL and the generated app."""
    name = snake_case(label) or fallback
    if name[0].isdigit():
        name = "n_" + name
    return _safe_snake(name)


def entity_name(label: str, fallback: str = "Entity") -> str:
    """A PascalCase class name for ``label``; the last word is made singular (``Books`` → ``Book``)."""
    words = [w.capitalize() if w.isupper() else w for w in ascii_words(label)]   # ORDERS → Orders
    if words:
        words[-1] = singular(words[-1])
    name = "".join(w[:1].upper() + w[1:] for w in words) or fallback
    if name[0].isdigit():
        name = "N" + name
    if keyword.iskeyword(name) or name in APP_RESERVED_CLASSES:
        name += "Entity"
    return name


def table_name(entity: str) -> str:
    """The plural snake_case table (and URL segment) for an entity class name."""
    words = snake_case(entity).split("_") if entity else ["entity"]
    words[-1] = plural(words[-1])
    name = "_".join(words)
    if name in SQL_RESERVED or name in APP_RESERVED_FIELDS:
        name += "_table"
    return name


def dedupe(names: Iterable[str]) -> list[str]:
    """The same names in order, later duplicates suffixed ``_2``, ``_3`` … (never colliding)."""
    seen: set[str] = set()
    last_suffix: dict[str, int] = {}     # so a thousand copies of one name stay linear
    out = []
    for name in names:
        candidate, n = name, last_suffix.get(name, 1)
        while candidate in seen:
            n += 1
            candidate = f"{name}_{n}"
        last_suffix[name] = n
        seen.add(candidate)
        out.append(candidate)
    return out


def lookup_key(label: str) -> str:
    """How a name is matched case- and number-insensitively (``authors``, ``Author`` → ``author``)."""
    words = ascii_words(label)
    if words:
        words[-1] = singular(words[-1])
    return "".join(w.lower() for w in words)
