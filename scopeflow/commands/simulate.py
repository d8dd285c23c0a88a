"""``scopeflow simulate MODEL [--answers FILE]``: test-run any diagram before binding operators.

Runs in memory (nothing is stored): unbound service tasks return simulated results, human tasks are
answered by their form defaults or the answers file, timers fire at once. Exit 0 when the model
reached its end, 1 when it stopped (an incident, a wait nobody answers, lint errors), 2 bad input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from scopeflow.cli import (
    EXIT_FAILED,
    App,
    Fail,
    _json_arg,
    _names_a_file,
    _print_json,
    main,
    pass_app,
    render_trace,
)


@main.command("simulate")
@click.argument("model")
@click.option("--answers", "answers_arg", help="answers as JSON (or @file.json): start, tasks, messages")
@click.option("--models-dir", type=click.Path(file_okay=False, path_type=Path),
              help="models directory (default: SCOPEFLOW_MODELS, else ./bpmn-models)")
@click.option("--run-operators", is_flag=True, help="run registered operators for real instead of simulating them")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def simulate_cmd(app: App, model: str, answers_arg: str | None, models_dir: Path | None, run_operators: bool,
                 as_json: bool) -> None:
    """Run MODEL (a process id, or a .bpmn file's path) in memory with simulated service tasks and
    answered human tasks; print its trace."""
    from scopeflow.engine.simulation import Answers, AnswersError, simulate
    from scopeflow.processes.catalog import main_process, scan, scan_around
    from scopeflow.processes.lint import grouped

    try:
        answers = Answers.from_json(_json_arg(answers_arg, "--answers"))
    except AnswersError as exc:
        raise Fail(str(exc)) from None
    if _names_a_file(model) and models_dir is None:
        catalog, defined = scan_around(Path(model))
        if not defined:   # the file does not parse
            raise Fail(catalog.broken[Path(model).name])
        model = main_process(catalog, defined, model)
    else:
        catalog = scan(models_dir or app.settings.models_dir)
    catalog.process(model, executable_only=False)
    result = simulate(catalog, model, answers, run_operators=run_operators)
    if as_json:
        _print_json({"model": result.model, "status": result.status, "reason": result.reason,
                     "simulated": result.simulated, "data": result.data,
                     "lint": [m.__dict__ for m in result.lint],
                     "spans": [{"name": s.name, "element": s.attributes.get("scopeflow.bpmn.element.id"),
                                "outcome": s.attributes.get("scopeflow.task.outcome"), "status": s.status}
                               for s in result.spans]})
    else:
        for line in grouped(result.lint):
            click.echo(line, err=result.status == "rejected")
        if result.spans:
            click.echo(render_trace(result.spans))
        simulated = f"; simulated: {', '.join(dict.fromkeys(result.simulated))}" if result.simulated else ""
        click.echo(f"simulation of {model}: {result.status} ({result.reason}){simulated}")
        if result.data:
            click.echo("final data: " + json.dumps(result.data, sort_keys=True, default=str)[:2000])
    if result.status != "completed":
        sys.exit(EXIT_FAILED)
