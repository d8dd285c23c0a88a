"""A scope's markdown as a flat list of blocks with source lines (markdown-it-py tokens, not regexes).

The analyst needs two things from the markdown: its structure (headings of any level, paragraph
lines, list items with their nesting, table rows) and, for every piece of text, the line of the
scope it came from, so each requirement can name its source line. Inline markup (bold, code,
links) is reduced to its text; a line written entirely in bold is flagged (``**Entities**`` is a
label).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from markdown_it.token import Token

from scopeflow.handlers.scope_sections import letter_lines, section_kind

_PARSER = MarkdownIt("commonmark").enable("table")


@dataclass
class Block:
    """One piece of a scope: a heading, a paragraph line, a list item, a table row, or code."""

    kind: str                       # heading | line | item | header | row | code
    text: str                       # plain text (markup removed); items: all of their own lines
    line: int                       # 1-based source line of its first line
    lines: list[int] = field(default_factory=list)   # every source line the block covers
    level: int = 0                  # heading level, or list depth (1 = top-level item)
    bold: bool = False              # a paragraph line written entirely in bold
    cells: list[str] = field(default_factory=list)   # table header / row cells
    parts: list[str] = field(default_factory=list)   # items: the text of each of their lines


def _plain(children: list[Token]) -> list[tuple[str, bool]]:
    """The inline text split at line breaks, each line with whether all its text was bold."""
    lines: list[tuple[list[str], list[bool]]] = [([], [])]
    strong = 0
    for child in children:
        if child.type in ("softbreak", "hardbreak"):
            lines.append(([], []))
        elif child.type == "strong_open":
            strong += 1
        elif child.type == "strong_close":
            strong = max(0, strong - 1)
        elif child.type in ("text", "code_inline", "html_inline"):
            lines[-1][0].append(child.content)
            if child.content.strip(" :"):
                lines[-1][1].append(strong > 0)
        elif child.type == "image":
            lines[-1][0].append(child.content)
    return [("".join(parts).strip(), bool(flags) and all(flags)) for parts, flags in lines]


_REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*\S")


def read_blocks(text: str) -> list[Block]:
    """The blocks of ``text`` in document order (link reference definitions, which the parser
    consumes without a token, come back as structure lines)."""
    front = _front_matter(text)
    if front:
        lines = text.splitlines()
        text = "\n".join("" if n <= len(front) else line for n, line in enumerate(lines, 1))
    blocks = front + _token_blocks(_wiki_headings(text))
    seen = {n for block in blocks for n in block.lines}
    blocks.extend(Block("structure", line, number, [number]) for number, line in enumerate(text.splitlines(), 1)
                  if number not in seen and _REFERENCE_DEFINITION.match(line))
    return blocks


_TASK_BOX = re.compile(r"^\[[ xX✓✔]\]\s+")
_WIKI_HEADING = re.compile(r"^h([1-6])\.\s+(?=\S)")            # Jira / Confluence / Textile ``h2. Entities``
_ORG_HEADING = re.compile(r"^(\*+)\s+(?=\S)")                   # org-mode ``** Entities``


def _wiki_headings(text: str) -> str:
    """Headings written in wiki markup (``h1. Title``) or org-mode (``* Title`` / ``** Entities``, when
    some line opens with ``**``) as markdown headings, line for line; markdown reads them as text or
    as list items."""
    lines = text.split("\n")
    org = any(re.match(r"^\*\*+\s+\S", line) for line in lines)
    out = []
    for line in lines:
        if match := _WIKI_HEADING.match(line):
            line = "#" * int(match[1]) + " " + line[match.end():]
        elif org and (match := _ORG_HEADING.match(line)):
            line = "#" * len(match[1]) + " " + line[match.end():]
        out.append(line)
    return "\n".join(out)


_FRONT_KEY = re.compile(r"^(?P<key>[\w-]+)\s*:\s*(?P<value>.*)$")
_FRONT_CONTENT = ("description", "summary", "about", "goal")


def _front_matter(text: str) -> list[Block]:
    """YAML front matter (``---`` on line 1, ``key: value`` lines, ``---`` or ``...``) as blocks,
    one per line, or ``[]``: markdown would read its keys as a setext heading and its fences as rules.

    ``title``/``name`` stays a ``Title: …`` label line (the app's name when no heading names it),
    ``description``/``summary``/… a paragraph line (the summary); the other keys (author, version,
    tags, dates) describe the document, not the app, and are structure.
    """
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return []
    end = next((n for n, line in enumerate(lines[1:60], 1) if line.strip() in ("---", "...")), None)
    inner = lines[1:end] if end else []
    if not end or not any(_FRONT_KEY.match(line) for line in inner) or not all(
            not line.strip() or line[:1].isspace() or line.lstrip().startswith(("-", "#")) or _FRONT_KEY.match(line)
            for line in inner):
        return []
    blocks = [Block("structure", "", 1, [1]), Block("structure", "", end + 1, [end + 1])]
    for number, line in enumerate(inner, 2):
        match = _FRONT_KEY.match(line)
        key = match["key"].lower() if match else ""
        value = match["value"].strip(" '\"|>") if match else ""
        if key in ("title", "name") and value:
            blocks.append(Block("line", f"Title: {value}", number, [number]))
        elif key in _FRONT_CONTENT and value:
            blocks.append(Block("line", value, number, [number]))
        elif line.strip():
            blocks.append(Block("structure", "", number, [number]))
    return sorted(blocks, key=lambda b: b.line)


def _token_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    depth = 0
    in_item_paragraph: list[bool] = []      # per open list item: has its first paragraph been read?
    heading_level = 0
    row: list[str] | None = None
    row_line = 0
    in_head = False
    for token in _PARSER.parse(text):
        kind = token.type
        if kind in ("bullet_list_open", "ordered_list_open"):
            depth += 1
        elif kind in ("bullet_list_close", "ordered_list_close"):
            depth -= 1
        elif kind == "list_item_open":
            in_item_paragraph.append(False)
        elif kind == "list_item_close":
            in_item_paragraph.pop()
        elif kind == "heading_open":
            heading_level = int(token.tag[1:])
            if token.map and token.map[1] - token.map[0] > 1:     # a setext heading's === / --- line
                blocks.append(Block("structure", "", token.map[1], [token.map[1]]))
        elif kind == "heading_close":
            heading_level = 0
        elif kind == "thead_open":
            in_head = True
        elif kind == "thead_close":
            in_head = False
        elif kind == "tr_open":
            row, row_line = [], (token.map[0] + 1 if token.map else 0)
        elif kind == "tr_close" and row is not None:
            blocks.append(Block("header" if in_head else "row", " | ".join(row), row_line, [row_line],
                                cells=row))
            if in_head:     # the |---|---| line under the header
                blocks.append(Block("structure", "", row_line + 1, [row_line + 1]))
            row = None
        elif kind == "hr" and token.map:
            blocks.append(Block("structure", "", token.map[0] + 1, [token.map[0] + 1]))
        elif kind in ("fence", "code_block", "html_block") and token.map:
            blocks.extend(_code_blocks(text, *token.map))
        elif kind == "inline":
            _inline(token, blocks, heading_level, depth, in_item_paragraph, row)
    return blocks


def _code_blocks(text: str, first: int, last: int) -> list[Block]:
    """Each line of a code or HTML block (fence markers and comments are structure, not content)."""
    found = []
    for number, line_text in zip(range(first, last), text.splitlines()[first:last], strict=False):
        stripped = line_text.strip()
        if not stripped:
            continue
        structural = stripped.startswith(("```", "~~~", "<!--")) or stripped.endswith("-->")
        found.append(Block("structure" if structural else "code", stripped, number + 1, [number + 1]))
    return found


def _inline(token: Token, blocks: list[Block], heading_level: int, depth: int,
            in_item_paragraph: list[bool], row: list[str] | None) -> None:
    first = token.map[0] + 1 if token.map else 0
    pieces = _plain(token.children or [])
    if row is not None:
        row.append(" ".join(text for text, _ in pieces).strip())
        return
    if heading_level:
        blocks.append(Block("heading", pieces[0][0] if pieces else "", first, [first], level=heading_level))
        return
    numbered = [(text, bold, first + offset) for offset, (text, bold) in enumerate(pieces) if text]
    if in_item_paragraph and numbered:
        if not in_item_paragraph[-1]:       # ``- [x] Shelf: label``: the task box is no part of the item
            numbered[0] = (_TASK_BOX.sub("", numbered[0][0]), *numbered[0][1:])
            in_item_paragraph[-1] = True
            blocks.append(Block("item", " ".join(t for t, _, _ in numbered), numbered[0][2],
                                [n for _, _, n in numbered], level=depth, parts=[t for t, _, _ in numbered]))
            return
        owner = next((b for b in reversed(blocks) if b.kind == "item" and b.level == depth), None)
        if owner is not None:       # a later paragraph of the same item continues it
            owner.text += " " + " ".join(t for t, _, _ in numbered)
            owner.lines.extend(n for _, _, n in numbered)
            owner.parts.extend(t for t, _, _ in numbered)
            return
    for text, bold, number in numbered:
        blocks.append(Block("line", text, number, [number], level=depth, bold=bold))


# ------------------------------------------------------------------------------ sections
_TITLE_LABELS = ("title", "name", "app", "project", "app name", "project name", "titel", "titre", "título")
_LABEL = re.compile(r"^(?P<label>[^\W\d_][\w &/'-]{0,40}?)\s*:\s*(?P<rest>.*)$")


@dataclass
class Section:
    kind: str                        # entities | features | integrations | constraints | prose
    line: int = 0                    # the heading or label that opened it (0: the text before any)
    level: int = 0                   # heading level that opened it (0: a label or none)
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    title: str | None
    title_line: int
    sections: list[Section]
    structure: set[int]              # lines that are structure only: headings, labels, table rules


def _label(block: Block) -> tuple[str, str] | None:
    """``(label, rest)`` when a paragraph line is a label: ``**Entities**``, ``Entities:`` or
    ``Entities: Book, Author`` (a label followed by text)."""
    if block.kind != "line":
        return None
    if block.bold:
        return block.text.strip(" :"), ""
    match = _LABEL.match(block.text)
    if match is None or len(match["label"].split()) > 4:
        return None
    return match["label"].strip(), match["rest"].strip()


_FIELDS_LABELS = ("fields", "attributes", "properties", "columns", "felder", "attribute", "champs", "campos")


def _fields_label(block: Block | None) -> bool:
    return block is not None and block.kind == "line" and block.text.strip(" :*").lower() in _FIELDS_LABELS


def _names_an_entity(block: Block, following: Block | None) -> bool:
    """``## Employee`` followed by ``Fields:``: an entity heading outside any entities section."""
    return section_kind(block.text) == "prose" and _fields_label(following)


def _bare_label(block: Block, following: Block | None) -> bool:
    """``Entities`` alone on a line right before a list or table: a label without colon or bold."""
    return (block.kind == "line" and following is not None and following.kind in ("item", "header")
            and following.line == block.line + 1 and len(block.text.split()) <= 3
            and section_kind(block.text) != "prose")


def _plain_title(block: Block, following: Block | None) -> bool:
    """``Dance school`` alone on the first line of a plain-text scope: a short line without end
    punctuation, set apart by a blank line, that names no section."""
    return (block.kind == "line" and not block.bold and len(block.text.split()) <= 6 and ":" not in block.text
            and not re.search(r"[.!?,:;]$", block.text) and section_kind(block.text) == "prose"
            and following is not None and following.line > block.line + 1)


_GHERKIN_SCENARIO = re.compile(r"^(?:Scenario(?: Outline| Template)?|Example|Rule)\s*:", re.IGNORECASE)


def _gherkin_feature(block: Block, blocks: list[Block]) -> str:
    """``Feature: Seed swap`` opening a Gherkin file (one with ``Scenario:`` lines) names the app;
    elsewhere ``Feature:`` is the features label."""
    label = _label(block)
    if label is None or label[0].lower() != "feature" or not label[1] or block.level:
        return ""
    return label[1] if any(b.kind == "line" and _GHERKIN_SCENARIO.match(b.text) for b in blocks) else ""


def split_sections(blocks: list[Block]) -> Document:
    """The title and the sections, in order; blocks before any section are prose."""
    doc = Document(None, 0, [Section("prose")], set())
    letter = letter_lines([(b.line, b.text) for b in blocks if b.kind == "line"])
    for position, block in enumerate(blocks):
        current = doc.sections[-1]
        following = blocks[position + 1] if position + 1 < len(blocks) else None
        if block.kind == "structure" or (block.kind == "line" and block.line in letter):
            doc.structure.add(block.line)
        elif position == 0 and _plain_title(block, following):
            doc.title, doc.title_line = block.text, block.line
        elif doc.title is None and (gherkin := _gherkin_feature(block, blocks)):
            doc.title, doc.title_line = gherkin, block.line
        elif block.kind == "header":        # a table's header row: kept for its column names
            doc.structure.add(block.line)
            current.blocks.append(block)
        elif block.kind == "heading" and _names_an_entity(block, following):
            doc.sections.append(Section("entities", block.line, block.level, [block]))
        elif block.kind == "heading":
            _heading(doc, current, block)
        elif current.kind == "entities" and _fields_label(block):
            doc.structure.add(block.line)           # ``Fields:`` under an entity heading
        elif (label := _label(block)) is not None and _opens_section(doc, current, *label):
            _label_section(doc, block, *label)
        elif _bare_label(block, following):
            _label_section(doc, block, block.text.strip(), "")
        else:
            current.blocks.append(block)
    return doc


def _heading(doc: Document, current: Section, block: Block) -> None:
    kind = section_kind(block.text)
    named = re.split(r"\s[—–:|-]\s|:\s", block.text, maxsplit=1)[0]    # ``Calibration Register — Requirements``
    if block.level == 1 and doc.title is None and not any(s.blocks for s in doc.sections[1:]) \
            and (kind == "prose" or (named != block.text and section_kind(named) == "prose")):
        doc.title, doc.title_line = block.text, block.line   # covered by the title requirement
        return
    deeper = current.level and block.level > current.level
    if deeper and current.kind == "entities" and kind in ("entities", "prose"):
        current.blocks.append(block)            # ### Book under ## Entities names an entity
        return
    if deeper and current.kind != "prose" and kind == "prose":
        doc.structure.add(block.line)           # ### Must have under ## Features groups items
        return
    doc.structure.add(block.line)
    doc.sections.append(Section(kind, block.line, block.level))


def _opens_section(doc: Document, current: Section, label: str, rest: str) -> bool:
    kind = section_kind(label)
    if label.lower() in _TITLE_LABELS:      # ``Title: Gym`` before any section
        return doc.title is None and len(doc.sections) == 1 and bool(rest)
    if kind == "prose" or len(label.split()) > 3:
        return False
    # inside the entities section ``Service: name (text)`` is an entity, not the integrations label
    return not (current.kind == "entities" and any(mark in rest for mark in ("(", "->", "→")))


def _label_section(doc: Document, block: Block, label: str, rest: str) -> None:
    if label.lower() in _TITLE_LABELS:
        doc.title, doc.title_line = rest, block.line
        return
    doc.sections.append(Section(section_kind(label), block.line, 0))
    if rest:        # ``Entities: Book, Author``: the text after the label is the section's first line
        doc.sections[-1].blocks.append(Block("line", rest, block.line, [block.line], level=0))
    else:
        doc.structure.add(block.line)
