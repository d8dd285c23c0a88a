"""SpiffWorkflow's parser, fed with prepared XML, and its errors turned into located sentences.

``processes.prepare`` rewrites a designer's file into the XML that runs; this module is the only
place that hands such XML to SpiffWorkflow — for lint (:func:`parse_problem`, :func:`schema_problems`)
and for deployed versions (:func:`load_specs`) — so lint and runtime parse the same thing.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.spiff.parser.process import VALIDATOR

from scopeflow.engine.spiff import build_parser


def load_specs(files: dict[str, bytes], dmn: dict[str, bytes], model: str) -> tuple[Any, dict[str, Any]]:
    """(spec, subprocess specs) of ``model`` from prepared BPMN ``files`` and DMN files."""
    parser = build_parser(validate=False)
    for path, xml in files.items():
        parser.add_bpmn_str(xml, filename=path)
    for path, xml in dmn.items():
        parser.add_dmn_str(xml, filename=path)
    return parser.get_spec(model), parser.get_subprocess_specs(model)


def parse_problem(files: dict[str, bytes], model: str, dmn: dict[str, bytes] | None = None) -> tuple[str, str] | None:
    """(element id, sentence) of the first thing SpiffWorkflow refuses in ``model``, or None."""
    try:
        load_specs(files, dmn or {}, model)
    except RecursionError:
        return "", ("the process is too long for SpiffWorkflow's parser (it recurses once per flow, and a "
                    "chain of a few hundred elements exceeds Python's limit): split it with call activities")
    except ValidationException as exc:
        return str(getattr(exc, "id", "") or ""), _sentence(str(exc.args[0]) if exc.args else "")
    except Exception as exc:  # the parser's own bugs: TypeError, NotImplementedError with a %r template…
        return _library_error(exc)
    return None


def _library_error(exc: Exception) -> tuple[str, str]:
    args = [a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a) for a in exc.args]
    template = args[0] if args else ""
    element = ""
    for extra in args[1:]:
        match = re.search(r'\bid="([^"]+)"', extra)
        if match:
            element = match.group(1)
    text = re.sub(r":?\s*%r", "", template)
    if isinstance(exc, TypeError) or not text:
        text = "SpiffWorkflow cannot parse this element"
    return element, _sentence(text)


_PREFIXES = {"http://www.omg.org/spec/BPMN/20100524/MODEL": "bpmn:", "http://www.omg.org/spec/BPMN/20100524/DI": "bpmndi:",
             "http://www.omg.org/spec/DD/20100524/DI": "di:", "http://www.omg.org/spec/DD/20100524/DC": "dc:"}
_REWORDED = {
    "Non-default exclusive outgoing sequence flow without condition":
        "this flow leaves an exclusive gateway without a condition and is not the gateway's default: add "
        "a condition or make it the default flow",
    "A multiinstance task must specify a cardinality or a loop input data reference":
        "multi-instance activity has neither a cardinality nor an input collection (loopDataInputRef)",
}


def _sentence(text: str) -> str:
    text = re.sub(r"\{([^}]*)\}", lambda m: _PREFIXES.get(m.group(1), ""), text)
    text = re.sub(r"\s+", " ", text).strip().rstrip(". ")
    text = text.replace("tasks of type", "this kind of task")
    return _REWORDED.get(text, text) or "SpiffWorkflow refused this element"


_SCHEMA: Any = None


def schema_problems(content: bytes) -> list[tuple[int, str]]:
    """Every BPMN XSD violation of ``content`` as (line, sentence)."""
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = VALIDATOR.validator
    tree = etree.fromstring(content, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    VALIDATOR.preprocess(tree)
    if _SCHEMA.validate(tree):
        return []
    return [(error.line, _sentence(error.message)) for error in _SCHEMA.error_log]
