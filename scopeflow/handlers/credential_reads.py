"""Which credentials a built app reads from its environment, and whether it can work without each.

A deploy should wait only for a credential that code which was actually built reads; a credential
named by an integration no built code uses is "needed once that integration is built", not asked
for. This module answers the question from the app's Python files alone (parsed with :mod:`ast`,
never imported or run):

- a **required** read fails without the variable: ``os.environ["NAME"]`` (or ``environ[...]``,
  ``os.environ.pop("NAME")``) outside a guard;
- an **optional** read has a fallback: ``os.environ.get("NAME", ...)``, ``os.getenv("NAME")``,
  ``os.environ.setdefault``, ``"NAME" in os.environ``, or a subscript inside an ``if``/conditional
  expression whose test reads the same name, or inside a ``try`` that catches ``KeyError``.

Only literal names count (a name computed at run time cannot be known without running the code).
Files that do not parse are skipped; the verifier has already failed such a build.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from scopeflow.handlers.app_content import content_files

_GETTERS = frozenset({"get", "setdefault"})          # os.environ.<getter>("NAME", ...): a fallback
_CATCHES_MISSING = frozenset({"KeyError", "LookupError", "Exception", "BaseException"})


@dataclass(frozen=True)
class Read:
    """One place the app reads an environment variable by a literal name."""

    name: str
    required: bool                 # True: this read fails when the variable is missing
    path: str                      # POSIX path relative to the app directory
    line: int


@dataclass
class NotBuilt:
    """An integration none of whose credentials any built code reads."""

    integration: str               # its label as the scope wrote it
    names: list[str]


@dataclass
class CredentialNeeds:
    """What a deploy of this app needs, decided from what its code reads."""

    required: list[str] = field(default_factory=list)    # read without a fallback: the deploy waits for them
    optional: list[str] = field(default_factory=list)    # read with a fallback: passed in when stored
    not_built: list[NotBuilt] = field(default_factory=list)
    labels: dict[str, list[str]] = field(default_factory=dict)   # name -> who declared it (integration labels)

    @property
    def read(self) -> list[str]:
        """Every credential name the built code reads (required first)."""
        return self.required + self.optional


# ------------------------------------------------------------------------------ reading the code
def _is_environ(node: ast.AST) -> bool:
    """``os.environ`` / ``environ`` (whatever module name it was imported under)."""
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ")


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _call_read(node: ast.Call) -> tuple[str, bool] | None:
    """(name, required) for ``getenv``/``environ.get``/``setdefault``/``pop`` calls with a literal name."""
    func, name = node.func, _literal(node.args[0]) if node.args else None
    if name is None:
        return None
    if (isinstance(func, ast.Attribute) and func.attr == "getenv") or (isinstance(func, ast.Name) and func.id == "getenv"):
        return name, False
    if isinstance(func, ast.Attribute) and _is_environ(func.value):
        if func.attr in _GETTERS:
            return name, False
        if func.attr == "pop":
            return name, len(node.args) < 2
    return None


def _membership(node: ast.Compare) -> str | None:
    """``"NAME" in os.environ``: the name tested, if that is what it is."""
    if len(node.ops) == 1 and isinstance(node.ops[0], ast.In | ast.NotIn) and _is_environ(node.comparators[0]):
        return _literal(node.left)
    return None


def _names_tested(test: ast.AST) -> set[str]:
    """Names a condition reads (``if os.environ.get("X"):`` guards a later ``os.environ["X"]``)."""
    found = set()
    for node in ast.walk(test):
        if isinstance(node, ast.Call) and (read := _call_read(node)):
            found.add(read[0])
        elif isinstance(node, ast.Compare) and (name := _membership(node)):
            found.add(name)
        elif isinstance(node, ast.Subscript) and _is_environ(node.value) and (name := _literal(node.slice)):
            found.add(name)
    return found


def _catches_missing(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(t, ast.Name) and t.id in _CATCHES_MISSING for t in types)


class _Reads(ast.NodeVisitor):
    """Collects reads; ``guarded`` holds the names whose absence the enclosing code handles."""

    def __init__(self, path: str) -> None:
        self.path, self.reads, self.guarded, self.all_guarded = path, [], [set()], [False]

    def _add(self, name: str, required: bool, node: ast.AST) -> None:
        required = required and not self.all_guarded[-1] and name not in self.guarded[-1]
        self.reads.append(Read(name, required, self.path, getattr(node, "lineno", 0)))

    def _within(self, nodes: list[ast.AST], names: set[str] | None = None, everything: bool = False) -> None:
        self.guarded.append(self.guarded[-1] | (names or set()))
        self.all_guarded.append(self.all_guarded[-1] or everything)
        for node in nodes:
            self.visit(node)
        self.guarded.pop()
        self.all_guarded.pop()

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        self._within(node.body, _names_tested(node.test))
        self._within(node.orelse)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self.visit(node.test)
        self._within([node.body], _names_tested(node.test))
        self._within([node.orelse])

    def visit_Try(self, node: ast.Try) -> None:
        self._within(node.body, everything=any(_catches_missing(h) for h in node.handlers))
        self._within([*node.handlers, *node.orelse, *node.finalbody])

    def visit_Subscript(self, node: ast.Subscript) -> None:
        name = _literal(node.slice) if _is_environ(node.value) else None
        if name is not None and isinstance(node.ctx, ast.Load):
            self._add(name, True, node)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        read = _call_read(node)
        if read is not None:
            self._add(read[0], read[1], node)
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        name = _membership(node)
        if name is not None:
            self._add(name, False, node)
        self.generic_visit(node)


def scan(app: Path) -> list[Read]:
    """Every literal environment read in the app's Python files (tests excluded: they are not shipped code)."""
    if not app.is_dir():
        return []
    files, _links = content_files(app)
    reads: list[Read] = []
    for relative in files:
        if not relative.endswith(".py") or relative.startswith("tests/") or "/tests/" in relative:
            continue
        try:
            tree = ast.parse((app / relative).read_text(encoding="utf-8", errors="replace"), filename=relative)
        except (SyntaxError, ValueError):
            continue
        visitor = _Reads(relative)
        visitor.visit(tree)
        reads += visitor.reads
    return reads


# ------------------------------------------------------------------------------ deciding
def decide(reads: list[Read], declared: dict[str, list[str]], integrations: dict[str, list[str]],
           reserved: frozenset[str]) -> CredentialNeeds:
    """What a deploy needs: the declared names the code reads (required when any read has no
    fallback), plus undeclared names the code cannot work without (unless the release sets them).

    ``declared`` maps each credential a scope or a built recipe names to who names it;
    ``integrations`` maps each integration's label to its credential names (for ``not_built``).
    """
    required_somewhere = {r.name for r in reads if r.required}
    read_names = list(dict.fromkeys(r.name for r in reads))
    wanted = [n for n in declared if n in read_names]
    wanted += [n for n in read_names if n not in declared and n in required_somewhere and n not in reserved
               and not n.upper().startswith("SCOPEFLOW_")]
    needs = CredentialNeeds(
        required=[n for n in wanted if n in required_somewhere],
        optional=[n for n in wanted if n not in required_somewhere],
        labels={n: declared.get(n, ["the built code"]) for n in wanted})
    needs.not_built = [NotBuilt(label, list(names)) for label, names in integrations.items()
                       if names and not any(n in read_names for n in names)]
    return needs
