"""``scopeflow trace import`` of files a misbehaving collector or a hostile sender could produce.

Each is refused with exit status 2 and one line naming the file and what is wrong with it, and
nothing is stored.
"""

from __future__ import annotations

import pytest

from scopeflow.spans.otlp_json import OtlpError, from_otlp_json, from_otlp_json_text
from tests.test_otlp_import import models, scopeflow  # noqa: F401 (models is a fixture)

TRACE_ID, SPAN_ID = "0" * 31 + "2", "0" * 15 + "1"
SPAN_HEAD = ('{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"' + TRACE_ID + '","spanId":"' + SPAN_ID
             + '","name":"x","startTimeUnixNano":"1","endTimeUnixNano":"2","attributes":[{"key":"k","value":')


def nested_value(depth: int) -> str:
    """A span whose one attribute is an array inside an array ... ``depth`` times."""
    return (SPAN_HEAD + '{"arrayValue":{"values":[' * depth + '{"stringValue":"x"}' + "]}}" * depth
            + "}]}]}]}]}")


@pytest.mark.parametrize("text", ['{"resourceSpans": [' + "[" * 100_000 + "]" * 100_000 + "]}",
                                  nested_value(2_000), nested_value(5_000)])
def test_json_nested_past_the_recursion_limit_is_an_otlp_error(text):
    with pytest.raises(OtlpError, match="nested too deeply to be read"):
        from_otlp_json_text(text)


def test_an_already_parsed_deep_object_is_an_otlp_error_too():
    data: dict = {"stringValue": "x"}
    for _ in range(3_000):
        data = {"arrayValue": {"values": [data]}}
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0" * 31 + "2", "spanId": "0" * 15 + "1",
                                                              "attributes": [{"key": "k", "value": data}]}]}]}]}
    with pytest.raises(OtlpError, match="nested too deeply"):
        from_otlp_json(document)


def test_the_cli_refuses_a_deeply_nested_file_in_one_line_and_stores_nothing(models, tmp_path):  # noqa: F811
    home = tmp_path / "home"
    file = tmp_path / "deep.json"
    file.write_text(nested_value(5_000), encoding="utf-8")
    done = scopeflow(home, models, "trace", "import", str(file))
    assert done.exit_code == 2, done.output
    assert done.output.strip() == (f"error: {file} is not OTLP JSON: nested too deeply to be read (values inside "
                                   "values past Python's recursion limit); not trace data")
    shown = scopeflow(home, models, "trace", "imported-" + "0" * 27)
    assert shown.exit_code != 0


@pytest.mark.parametrize(("content", "message"), [
    (b"", "is not OTLP JSON: not JSON: Expecting value at line 1 column 1"),
    (bytes(range(256)) * 4, "is not UTF-8 text"),
    (b'{"resourceSpans": [null, 5]}', "is not OTLP JSON: not OTLP/JSON trace data"),
    (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"0000000000000001"}]}]}]}',
     "traceId 'zz' is not hex"),
])
def test_unreadable_files_are_one_line_errors(models, tmp_path, content, message):  # noqa: F811
    file = tmp_path / "bad.json"
    file.write_bytes(content)
    done = scopeflow(tmp_path / "home", models, "trace", "import", str(file))
    assert done.exit_code == 2 and len(done.output.strip().splitlines()) == 1, done.output
    assert message in done.output


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(models, tmp_path):  # noqa: F811
    from scopeflow.commands.evidence import MAX_TRACE_FILE_BYTES

    file = tmp_path / "huge.json"
    with file.open("wb") as out:            # sparse: the size is what counts, nothing is written
        out.truncate(MAX_TRACE_FILE_BYTES + 1)
    done = scopeflow(tmp_path / "home", models, "trace", "import", str(file))
    assert done.exit_code == 2 and len(done.output.strip().splitlines()) == 1, done.output
    assert "trace import reads at most 100 MB" in done.output
