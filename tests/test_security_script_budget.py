"""A script cannot switch off its budget, stop the engine's thread, or hold the interpreter in C.

Issue #19 items 2-4, each reproduced: the attack as a script, what the engine makes of it (an
error with a clear message, an incident on the instance), and the proof the worker is unharmed
(the killed script process is gone, the next script and the next instance still run).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from scopeflow.engine.models import Instance
from scopeflow.engine.sandbox import RestrictedEnvironment, ScriptError, ScriptTimeout, ScriptTooLarge
from scopeflow.engine.script_pool import ScriptPool
from scopeflow.engine.service import Engine
from scopeflow.engine.spiff import deserialize
from scopeflow.engine.workers import EmbeddedWorker
from tests.conftest import make_settings
from tests.test_security_scripts import _condition_model, _script_model

BUDGET_S = 0.5


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:   # a zombie is dead too
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.fixture()
def pool():
    own = ScriptPool(size=2)
    yield own
    own.close()


# ------------------------------------------------------------------------------ item 2: the budget holds

BUDGET_DODGES = [
    ("catch_the_timeout", "try:\n    while True:\n        pass\nexcept Exception:\n    while True:\n        pass"),
    ("loop_in_finally", "try:\n    while True:\n        pass\nfinally:\n    while True:\n        pass"),
    ("catch_everything", "while True:\n    try:\n        while True:\n            pass\n    except:\n        pass"),
    ("catch_recursion_error",
     "def f(n):\n    return f(n + 1)\ntry:\n    f(0)\nexcept Exception:\n    while True:\n        pass"),
    # 10,000 comparisons of two 1,000,000-item lists, each a loop in C: about 20 s in one sort() call
    ("one_long_c_call", "x = sorted([[0] * 10**6] * 10**4)"),
]


@pytest.mark.parametrize(("probe", "script"), BUDGET_DODGES, ids=[d[0] for d in BUDGET_DODGES])
def test_a_script_cannot_switch_off_its_time_budget(pool, probe, script):
    env = RestrictedEnvironment(time_budget_s=BUDGET_S, pool=pool)
    env.execute("warm = 1", {}, {})      # a fast-path script: no worker yet
    env.execute("warm = [i for i in range(3)]", {})
    (worker,) = pool.worker_pids()
    started = time.monotonic()
    with pytest.raises(ScriptTimeout, match="time budget of 0.5s"):
        env.execute(script, {})
    assert time.monotonic() - started < 5
    assert not _alive(worker), "the overrunning script's process must be killed"
    data = {"n": 2}
    env.execute("n = sum([n] * 3)", data)   # the pool starts a fresh worker for the next script
    assert data == {"n": 6}


# ------------------------------------------------------------------------------ item 3: BaseException

BASE_EXCEPTIONS = ["SystemExit", "KeyboardInterrupt", "GeneratorExit", "BaseException"]


@pytest.mark.parametrize("name", BASE_EXCEPTIONS)
def test_a_script_raising_a_base_exception_gets_a_script_error(pool, name):
    env = RestrictedEnvironment(time_budget_s=BUDGET_S, pool=pool)
    with pytest.raises(ScriptError, match=f"script raised {name}, which BPMN scripts may not raise"):
        env.execute(f"raise {name}", {})
    with pytest.raises(ScriptError, match=f"raised {name}"):
        env.evaluate(f"[0 for _ in (1,)] and (_ for _ in ()).throw({name})", {})


@pytest.fixture(scope="module")
def attack_engine(tmp_path_factory) -> tuple[Engine, Path]:
    root = tmp_path_factory.mktemp("attacks")
    models = root / "models"
    models.mkdir()
    for name in BASE_EXCEPTIONS:
        (models / f"raise_{name.lower()}.bpmn").write_text(_script_model(f"raise_{name.lower()}", f"raise {name}"))
    (models / "catch_timeout.bpmn").write_text(_script_model("catch_timeout", BUDGET_DODGES[0][1]))
    (models / "benign.bpmn").write_text(_script_model("benign", "answer = [6 * 7 for _ in (1,)][0]"))
    (models / "mutating_condition.bpmn").write_text(
        _condition_model("mutating_condition", "items.extend(items * 1000) or True"))
    return Engine(make_settings(root / "home", models)), root


def test_base_exceptions_and_overruns_become_incidents_and_the_worker_thread_goes_on(attack_engine):
    engine, _root = attack_engine
    hostile = [engine.start(f"raise_{name.lower()}", {}, advance=False) for name in BASE_EXCEPTIONS]
    hostile.append(engine.start("catch_timeout", {}, advance=False))
    benign = [engine.start("benign", {}, advance=False) for _ in range(3)]
    worker = EmbeddedWorker(engine.settings, concurrency=1, poll_s=0.05)
    tally = worker.drain()        # one thread advances everything, hostile instances first
    assert tally.failed == 0
    with engine.sessions() as session:
        rows = {row.id: row for row in session.scalars(select(Instance).where(Instance.id.in_(hostile + benign)))}
        for instance_id, name in zip(hostile, [*BASE_EXCEPTIONS, "timeout"], strict=True):
            assert rows[instance_id].status == "error"
            expected = "time budget" if name == "timeout" else f"script raised {name}"
            assert expected in rows[instance_id].incident["message"]
        assert all(rows[instance_id].status == "completed" for instance_id in benign)


# ------------------------------------------------------------------------------ item 4: C-level work, sizes

C_LEVEL = [
    ("pow_with_modulus", "x = pow(3, (1 << 20000) - 1, (1 << 20000) - 3)", "pow() modulus"),
    ("pow_huge_exponent", "x = pow(3, 1 << 90000, 1000003)", "pow() exponent with a modulus"),
    ("sum_of_big_ints", "x = sum([1 << 99999] * 10**6)", "sum() of integers"),
    ("translate", "x = ('a' * 10**6).translate({97: 'b' * 1000})", "str.translate() result"),
    ("percent_tuple", "big = 'a' * 10**6\nx = ('%s' * 1000) % ((big,) * 1000)", "%-formatting result"),
    ("percent_mapping", "x = ('%(a)s' * 1000) % {'a': 'a' * 10**6}", "%-formatting result"),
    ("fstring_fields", "b = 'a' * 9 * 10**6\nx = f'{b}{b}{b}{b}'", "f-string"),
    ("fstring_repr", "row = ['a' * 1000] * 10**4\nx = f'{[row] * 200}'", "f-string field"),
    ("memory", "x = []\nwhile True:\n    x.append('a' * 10**7)", "out of memory"),
]


@pytest.mark.parametrize(("probe", "script", "fragment"), C_LEVEL, ids=[c[0] for c in C_LEVEL])
def test_c_level_work_and_amplifiers_are_refused(pool, probe, script, fragment):
    env = RestrictedEnvironment(time_budget_s=5.0, pool=pool)
    started = time.monotonic()
    with pytest.raises(ScriptTooLarge, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        env.execute(script, {})
    assert time.monotonic() - started < 5


def test_ordinary_uses_of_the_bounded_operations_still_work(pool):
    env = RestrictedEnvironment(pool=pool)
    data: dict = {}
    env.execute("a = pow(3, 65537, (1 << 2048) - 1) > 0\nb = sum([1, 2, 3])\nc = sum([[1], [2]], [])\n"
                "d = 'abc'.translate({97: 'xy'})\ne = '%s-%d' % ('x', 5)\nf = f'{b:>4}|{c}'", data)
    assert data == {"a": True, "b": 6, "c": [1, 2], "d": "xybc", "e": "x-5", "f": "   6|[1, 2]"}


def test_a_gateway_condition_cannot_change_the_data_it_reads(pool):
    env = RestrictedEnvironment(pool=pool)
    data = {"items": [1, 2], "config": {"limit": 3}}
    assert env.evaluate("items.extend(items * 1000) or config.update({'limit': 0}) or True", data) is True
    assert data == {"items": [1, 2], "config": {"limit": 3}}


def test_a_mutating_condition_in_a_model_leaves_the_instance_data_unchanged(attack_engine):
    engine, _root = attack_engine
    instance_id = engine.start("mutating_condition", {"items": [1, 2]})
    with engine.sessions() as session:
        row = session.get(Instance, instance_id)
        assert row.status == "completed"
        workflow = deserialize(row.state)
    stored = [task.data["items"] for task in workflow.get_tasks() if "items" in task.data]
    assert stored and all(items == [1, 2] for items in stored)   # the condition's extend() reached nothing


@pytest.mark.parametrize(("script", "fragment"), [
    ("x = {1, 2}", "x is a set, which JSON cannot hold"),
    ("x = {(1, 2): 'a'}", "x has a key of type tuple"),
    ("x = [1]\nx.append(x)", "x[1] refers to itself"),
    ("x = map(str, [1])", "x is a map"),
])
def test_a_script_must_leave_plain_json(pool, script, fragment):
    data = {"before": 1}
    with pytest.raises(ScriptError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        RestrictedEnvironment(pool=pool).execute(script, data)
    assert data == {"before": 1}


# ------------------------------------------------------------------------------ the fast path

class _NoWorkers(ScriptPool):
    """A pool that records what was sent to it and refuses to run anything."""

    def __init__(self):
        super().__init__(size=1)
        self.sent: list[str] = []

    def run(self, request, budget_s):
        self.sent.append(request["source"])
        raise AssertionError("no worker expected")


@pytest.mark.parametrize("expression", [
    "review_decision['decision'] == 'approve'",
    "regenerations <= max_regenerations and error_payload['kind'] != 'design_flaw'",
    "len(items) > 2 or not flags.get('off', False)",
    "-count + 1 if count else max(items)",
    "'%s/%d' % (name, count)",
])
def test_simple_conditions_and_parameters_run_in_process(expression):
    data = {"review_decision": {"decision": "approve"}, "regenerations": 1, "max_regenerations": 3,
            "error_payload": {"kind": "recoverable"}, "items": [1, 2, 3], "flags": {}, "count": 4, "name": "n"}
    env = RestrictedEnvironment(pool=_NoWorkers())
    env.evaluate(expression, data)
    env.execute(f"result = {expression}\ncount += 1", data)
    assert data["count"] == 5
    assert env.pool.sent == []


@pytest.mark.parametrize(("source", "expected"), [
    ("[n for n in items]", [1, 2]),              # a comprehension: a loop
    ("sorted(items)", [1, 2]),                   # a call outside the fast list
    ("'ab' * 60000", "ab" * 60000),              # above the fast limits: moved to a worker, same answer
    ("items.copy()", [1, 2]),                    # a method other than get()
])
def test_everything_else_runs_in_a_worker(pool, source, expected):
    recorder = _NoWorkers()
    with pytest.raises(AssertionError, match="no worker expected"):
        RestrictedEnvironment(pool=recorder).evaluate(source, {"items": [1, 2]})
    assert recorder.sent == [source]
    assert RestrictedEnvironment(pool=pool).evaluate(source, {"items": [1, 2]}) == expected


def test_only_the_names_a_script_uses_are_sent_to_its_worker():
    recorder = _NoWorkers()
    env = RestrictedEnvironment(pool=recorder)
    captured = {}
    recorder.run = lambda request, budget_s: captured.update(request) or (_ for _ in ()).throw(RuntimeError)
    with pytest.raises(RuntimeError):
        env.execute("total = sum(p for p in prices)", {"prices": [1, 2], "spec": {"big": "x" * 10**6}})
    assert captured["names"] == {"prices": [1, 2]}


def test_a_worker_that_died_while_idle_is_replaced_without_losing_the_script(pool):
    env = RestrictedEnvironment(pool=pool)
    env.execute("x = [1 for _ in (1,)]", {})
    (idle,) = pool.worker_pids()
    os.kill(idle, 9)
    time.sleep(0.1)
    data: dict = {}
    env.execute("y = [2 for _ in (1,)]", data)
    assert data == {"y": [2]} and idle not in pool.worker_pids()
