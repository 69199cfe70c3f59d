"""The ``tripwire`` command: ``rules`` (the catalogue), ``check CONFIG`` (validate a YAML file),
``report RUN`` (the HTML report of a run), ``calibrate RUN...`` (per-rule margins on healthy runs)
and ``demo`` (a short training with planted faults).

Each subcommand is one function ``_cmd_<name>(args) -> exit code`` plus its arguments in
:func:`build_parser`. Errors a user can fix print one located message on stderr and exit 1;
they never print a traceback.

Example:
    >>> main(["rules", "nonfinite"])  # doctest: +ELLIPSIS
    nonfinite  default set: yes; severity: error; actions: alert, stop; frameworks: torch, keras; rearm_after: 10
    ...
    0
"""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic_core import PydanticUndefined

from tripwire import __version__
from tripwire.errors import ConfigError, TripwireError

# ---- the rule catalogue --------------------------------------------------------------------


def catalogue(kinds: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every built-in rule type (or those in ``kinds``) described from the registry.

    Raises:
        KeyError: a name in ``kinds`` that is not a rule type (the message has a close match).
    """
    from tripwire.registry import builtin_rules, suggest

    rules = builtin_rules()
    for kind in kinds:
        if kind not in rules:
            raise KeyError(f"unknown rule type '{kind}'{suggest(kind, rules)}; valid: {', '.join(rules)}")
    return [_describe(cls) for kind, cls in rules.items() if not kinds or kind in kinds]


def _describe(cls: Any) -> dict[str, Any]:
    params = []
    former = {current: old for old, current in getattr(cls.Params, "renamed", {}).items()}
    for name, field in cls.Params.model_fields.items():
        if field.default is not PydanticUndefined:
            default = repr(field.default)
        elif field.default_factory is not None:
            default = repr(field.default_factory())
        else:
            default = "required"
        description = " ".join((field.description or "").split())
        if name in former:
            description += f" (formerly {former[name]}, still accepted)"
        params.append({"name": name, "type": _type_name(field.annotation), "default": default,
                       "description": description})
    return {"kind": cls.kind, "summary": cls.summary, "default_set": cls.in_default_set, "severity": cls.severity,
            "actions": list(cls.default_actions), "frameworks": list(cls.frameworks), "params": params,
            "rearm_after": cls.rearm_after}


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def rules_text(kinds: Sequence[str] = ()) -> str:
    """The catalogue as indented plain text."""
    lines = []
    for rule in catalogue(kinds):
        lines.append(f"{rule['kind']}  default set: {'yes' if rule['default_set'] else 'no'}; "
                     f"severity: {rule['severity']}; actions: {', '.join(rule['actions'])}; "
                     f"frameworks: {', '.join(rule['frameworks'])}; rearm_after: {rule['rearm_after']}")
        lines.append(f"    {rule['summary']}")
        for p in rule["params"]:
            lines.append(f"    {p['name']} = {p['default']}  ({p['type']}) {p['description']}".rstrip())
        if not rule["params"]:
            lines.append("    (no parameters)")
        lines.append("")
    return "\n".join(lines)


def rules_markdown(kinds: Sequence[str] = (), *, details: bool = True, link: str = "") -> str:
    """The catalogue as Markdown: an overview table, then (``details``) one section per rule.

    ``link`` prefixes the anchors of the overview (the README links into ``docs/rules.md``).
    """
    rules = catalogue(kinds)
    out = ["| rule | what it catches | default set | default actions | frameworks |", "|---|---|---|---|---|"]
    for r in rules:
        out.append(f"| [`{r['kind']}`]({link}#{r['kind']}) | {_cell(r['summary'])} | "
                   f"{'yes' if r['default_set'] else 'no'} | {', '.join(r['actions'])} | "
                   f"{', '.join(r['frameworks'])} |")
    for r in rules if details else ():
        out += ["", f"### {r['kind']}", "", r["summary"], "",
                f"Default set: {'yes' if r['default_set'] else 'no'}. Severity: {r['severity']}. "
                f"Default actions: {', '.join(r['actions'])}. Frameworks: {', '.join(r['frameworks'])}. "
                f"Re-arms after `rearm_after: {r['rearm_after']}` clear "
                f"{'validations' if r['rearm_after'] == 1 else 'samples'} in a row.", ""]
        if r["params"]:
            out += ["| parameter | type | default | description |", "|---|---|---|---|"]
            out += [f"| `{p['name']}` | {_cell(p['type'])} | `{_cell(p['default'])}` | {_cell(p['description'])} |"
                    for p in r["params"]]
        else:
            out.append("No parameters.")
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


# ---- subcommands ---------------------------------------------------------------------------


def _cmd_rules(args: argparse.Namespace) -> int:
    try:
        text = rules_markdown(args.kinds) if args.markdown else rules_text(args.kinds)
    except KeyError as exc:
        return _fail(f"tripwire rules: {exc.args[0]}")
    sys.stdout.write(text)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from tripwire.config import Config
    from tripwire.engine import Engine

    status = 0
    for name in args.configs:
        try:
            config = Config.load(Path(name))
            specs = config.rule_specs()
            Engine(config)  # builds every rule: each statistic it needs must exist
        except ConfigError as exc:
            status = _fail("\n".join(f"{error.args[0]}{_excerpt(error)}" for error in exc.errors))
            continue
        except Exception as exc:  # noqa: BLE001 - e.g. a user rule module that fails to import
            status = _fail(f"{name}: cannot load the config: {type(exc).__name__}: {exc}")
            continue
        listed = ", ".join(n if s.type == n else f"{n} ({s.type})" for n, s in specs.items())
        which = "the default set: " if config.rules is None else ""
        print(f"ok: {name}: {len(specs)} rule{'' if len(specs) == 1 else 's'} ({which}{listed})")
    return status


def _excerpt(exc: ConfigError) -> str:
    """The offending line of the file with a caret under the column, or ''."""
    try:
        line = Path(exc.source).read_text(encoding="utf-8").splitlines()[exc.line - 1]
    except (OSError, TypeError, IndexError, UnicodeDecodeError):
        return ""
    caret = " " * ((exc.column or 1) - 1) + "^"
    return f"\n{exc.line:>5} | {line}\n      | {caret}"


def _cmd_report(args: argparse.Namespace) -> int:
    from tripwire.report import open_run, write_report
    from tripwire.wording import step_word

    with open_run(args.run) as run:
        print(f"tripwire: report written to {write_report(run, args.out)}")
        print(f"  {run.name}: {run.end.headline(step_word(run.meta.get('framework')))}")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from tripwire.calibrate import calibrate, format_table
    from tripwire.record import RecordError

    try:
        rows = calibrate(args.runs, kinds=args.rule)
    except (FileNotFoundError, RecordError) as exc:
        return _fail(f"tripwire calibrate: {exc}")
    print(f"tripwire calibrate: {len(args.runs)} run{'' if len(args.runs) == 1 else 's'}. closest: the strictest "
          f"value at which every run stays silent; proposed: closest with a safety margin ({args.safety:g}x on log "
          "scales). no data: the record lacks the rule's statistics (record with `shadow: true`)")
    print(format_table(rows, args.safety))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from tripwire.demo import run_demo

    try:
        result = run_demo(args.framework, args.out, report=not args.no_report)
    except RuntimeError as exc:  # no framework installed: say what to install
        return _fail(f"tripwire demo: {exc}")
    return 0 if result["findings"] else _fail("tripwire demo: the planted faults were not detected")


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; a new subcommand is a ``_cmd_*`` function and a few lines here."""
    parser = argparse.ArgumentParser(prog="tripwire", description="Catch broken training runs while they happen.")
    parser.add_argument("--version", action="version", version=f"tripwire {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("rules", help="list the rule types with their defaults and parameters")
    p.add_argument("kinds", nargs="*", metavar="RULE", help="only these rule types")
    p.add_argument("--markdown", action="store_true", help="print Markdown (the README's rule catalogue)")
    p.set_defaults(func=_cmd_rules)

    p = sub.add_parser("check", help="validate YAML config files")
    p.add_argument("configs", nargs="+", metavar="CONFIG", help="a tripwire YAML file")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("report", help="write the HTML report of a run (plots of what each rule saw)")
    p.add_argument("run", metavar="RUN", help="a run directory <log_dir>/<run_name>, its record.sqlite, or a "
                                              "log directory (its latest run)")
    p.add_argument("--out", metavar="FILE", help="where to write the page (default: RUN/report.html)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("calibrate", help="replay the rules over healthy runs: how close each came to firing, "
                                         "and proposed thresholds")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories or record.sqlite files of healthy runs "
                                                          "(recorded with `shadow: true` for every rule)")
    p.add_argument("--rule", action="append", default=[], metavar="RULE", help="only this rule (repeatable)")
    p.add_argument("--safety", type=float, default=3.0, help="safety factor of the proposals (default: %(default)s)")
    p.set_defaults(func=_cmd_calibrate)

    p = sub.add_parser("demo", help="train briefly with planted faults and show what tripwire finds")
    p.add_argument("--framework", choices=["lightning", "xgboost"], help="default: the first one installed")
    p.add_argument("--out", default="tripwire_demo", metavar="DIR", help="run record directory (default: %(default)s)")
    p.add_argument("--no-report", action="store_true", help="skip the HTML report")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TripwireError as exc:
        return _fail(f"tripwire {args.command}: {exc}")
    except BrokenPipeError:  # `tripwire rules | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
