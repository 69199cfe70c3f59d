"""Configuration: a YAML file, a dict or a :class:`Config`, validated with located errors.

Example:
    >>> cfg = Config.load({"interval": 5, "rules": {"dead_relu": {"threshold_layer": 0.3}}})
    >>> cfg.interval, cfg.rules["dead_relu"].type, cfg.rules["dead_relu"].params
    (5, 'dead_relu', {'threshold_layer': 0.3})
    >>> Config.load({"rules": {"dead_relus": {}}})
    Traceback (most recent call last):
    ...
    tripwire.errors.ConfigError: <dict> at 'rules.dead_relus': unknown rule type 'dead_relus'
    (did you mean 'dead_relu'?); ...

Your own code is named as ``'package.module:name'``: a rule type (``type: mypkg.rules:MyRule``)
or an action (``actions: [mypkg.hooks:notify]``, called with each finding). Both are imported
when the config loads, so a reference that does not resolve fails here, not at the first finding:

    >>> Config.load({"rules": {"nonfinite": {"actions": ["alert", "json:laods"]}}})
    Traceback (most recent call last):
    ...
    tripwire.errors.ConfigError: <dict> at 'rules.nonfinite.actions.1': cannot load action 'json:laods':
    module 'json' has no attribute 'laods' (did you mean 'loads'?); valid: alert, stop, raise, checkpoint,
    skip_step, reduce_lr, rollback, or 'package.module:function'

A remediation (``skip_step``) goes only on a rule that can drive it:

    >>> Config.load({"rules": {"exploding_gradient": {"actions": ["alert", "skip_step"]}}})
    Traceback (most recent call last):
    ...
    tripwire.errors.ConfigError: <dict> at 'rules.exploding_gradient.actions.1': rule type 'exploding_gradient'
    cannot skip_step: it needs a verdict at every step, before the update; rule types that can: loss_spike

Keyword arguments of the callbacks override the config; ``log_dir`` defaults to
:data:`FROM_CONFIG` because its ``None`` means "no run record", as in YAML:

    >>> import inspect
    >>> from tripwire import Monitor
    >>> inspect.signature(Monitor).parameters["log_dir"].default
    FROM_CONFIG
    >>> Monitor({"log_dir": "runs"}).config.log_dir, Monitor({"log_dir": "runs"}, log_dir=None).config.log_dir
    ('runs', None)
"""

from __future__ import annotations

import enum
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tripwire.errors import ConfigError
from tripwire.references import resolve
from tripwire.registry import builtin_rules, rule_class, suggest
from tripwire.remediation import PARAMETERS, REMEDIATIONS, WHY_NOT
from tripwire.rule import both_names, deprecated_name

log = logging.getLogger("tripwire")

#: the actions by name; the remediations (:mod:`tripwire.remediation`) may also be written with parameters
ACTIONS = ("alert", "stop", "raise", "checkpoint", *REMEDIATIONS)
_VALID_ACTIONS = f"valid: {', '.join(ACTIONS)}, or 'package.module:function'"


class FromConfig(enum.Enum):
    """The type of :data:`FROM_CONFIG` (an enum member: it survives pickling and deep copies,
    which the sklearn API of XGBoost makes of its callbacks)."""

    FROM_CONFIG = "FROM_CONFIG"

    def __repr__(self) -> str:
        return "FROM_CONFIG"


#: Default of a keyword argument whose ``None`` has a meaning of its own: "take the config's value".
#: The callbacks' ``log_dir`` uses it, so that ``log_dir=None`` disables the run record exactly as
#: ``log_dir: null`` does in YAML, while leaving the argument out keeps the config's directory.
FROM_CONFIG = FromConfig.FROM_CONFIG
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_RULE_COMMON = ("type", "actions", "enabled", "severity", "rearm_after")
_MAX_NODES = 100_000


class RuleSpec(BaseModel):
    """One configured rule instance: its type, parameters and actions."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    actions: tuple[str, ...] | None = None
    enabled: bool = True
    severity: str | None = None
    #: clear verdicts in a row before a subject may fire again; None: the rule type's ``rearm_after``
    rearm_after: int | None = Field(None, ge=1)
    #: the parameters of its remediation actions written with some (``{reduce_lr: {factor: 0.3}}``)
    remediations: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def remediation(self, action: str) -> Any:
        """The parameters of remediation ``action`` (:mod:`tripwire.remediation`), defaults filled in.

        Example:
            >>> spec = Config.load({"rules": {"loss_spike": {"actions": [{"reduce_lr": {"factor": 0.3}}]}}})
            >>> spec.rules["loss_spike"].actions, spec.rules["loss_spike"].remediation("reduce_lr").factor
            (('reduce_lr',), 0.3)
        """
        return PARAMETERS[action].model_validate(self.remediations.get(action, {}))


class WebhookConfig(BaseModel):
    """HTTP POST of each finding as JSON, with a Slack-compatible ``text`` field."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str
    timeout_s: float = Field(5.0, gt=0)
    retries: int = Field(2, ge=0, le=10)
    backoff_s: float = Field(0.5, ge=0)  # first retry waits this long, then doubles
    headers: dict[str, str] = Field(default_factory=dict)


class EmailConfig(BaseModel):
    """SMTP delivery; credentials come from environment variables, never from the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    smtp: str = "localhost:25"
    to: list[str]
    sender: str = "tripwire@localhost"
    starttls: bool = False
    username_env: str | None = None
    password_env: str | None = None
    timeout_s: float = Field(10.0, gt=0)


class LogConfig(BaseModel):
    """Python logging (the default channel)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    logger: str = "tripwire"


class ConsoleConfig(BaseModel):
    """A line on stderr per finding."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimitConfig(BaseModel):
    """At most ``alerts`` alerts per rule in each ``window_s`` seconds, on every channel; the rest
    are counted and told in one summary alert when the window ends (and at the end of the run)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    alerts: int = Field(5, ge=1)
    window_s: float = Field(3600.0, gt=0)


class ChannelsConfig(BaseModel):
    """Alert channels used by the ``alert`` action."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    log: LogConfig | None = LogConfig()
    console: ConsoleConfig | None = None
    webhook: WebhookConfig | None = None
    email: EmailConfig | None = None
    queue_size: int = Field(1000, ge=1)
    #: ``null``: every finding is alerted, however often its rule fires
    rate_limit: RateLimitConfig | None = RateLimitConfig()

    @field_validator("webhook", mode="after")
    @classmethod
    def _no_url_no_webhook(cls, webhook: WebhookConfig | None) -> WebhookConfig | None:
        """A webhook whose url is empty is off: ``url: "${TRIPWIRE_WEBHOOK:-}"`` sends alerts where the
        variable is set and skips the channel where it is not.

        Example:
            >>> ChannelsConfig(webhook={"url": ""}).webhook is None
            True
        """
        return None if webhook is not None and not webhook.url.strip() else webhook


class MetricsConfig(BaseModel):
    """Names under which the framework reports losses."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    train_loss: str = "loss"
    val_loss: str = "val_loss"


class Config(BaseModel):
    """The whole configuration. ``rules=None`` means the built-in default rule set."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    interval: int = Field(10, ge=1)
    #: share of training time sampling may take (default 1%): unless ``interval`` is given, the
    #: torch adapters adapt the interval to the measured cost of a sampled step, starting at
    #: ``interval`` (see :mod:`tripwire.schedule`); ``null`` pins the interval. Keras and XGBoost
    #: sample every ``interval`` steps.
    overhead_budget: float | None = Field(0.01, gt=0, lt=1)
    #: the budget samples no denser than the default interval: the default rules' patience and
    #: thresholds were measured on samples 10 steps apart; sampled every step, a healthy BatchNorm
    #: ResNet's one-batch gradient spikes (15x the running median) fired `exploding_gradient`
    min_interval: int = Field(10, ge=1)
    max_interval: int = Field(100, ge=1)
    log_dir: str | None = "tripwire_runs"
    strict: bool = False
    #: every built-in rule runs, log-only (findings logged and recorded; no stop, raise, checkpoint
    #: or alert channel): a run that feeds ``tripwire calibrate``, or a trial of new rules
    shadow: bool = False
    log_stats: bool = True
    rules: dict[str, RuleSpec] | None = None
    actions: ChannelsConfig = ChannelsConfig()
    metrics: MetricsConfig = MetricsConfig()
    source: str = Field("<dict>", exclude=True)

    @model_validator(mode="after")
    def _one_schedule(self) -> Config:
        if self.min_interval > self.max_interval:
            raise ValueError(f"min_interval ({self.min_interval}) is above max_interval ({self.max_interval})")
        if self.overhead_budget is not None and {"interval", "overhead_budget"} <= self.model_fields_set:
            raise ValueError("give either interval (sample every N steps) or overhead_budget (the interval "
                             "adapts to the measured cost), not both")
        return self

    @property
    def budgeted(self) -> bool:
        """Whether the sampling interval follows ``overhead_budget`` (the default; ``interval`` pins it)."""
        return self.overhead_budget is not None and "interval" not in self.model_fields_set

    @classmethod
    def load(cls, config: Config | dict | str | os.PathLike | None = None) -> Config:
        """Build from a file path, YAML text, a dict, a Config (returned as is) or None.

        Raises:
            ConfigError: the first problem of the config; ``errors`` holds every problem found
                (``tripwire check`` prints them all).
        """
        try:
            if config is None:
                return cls()
            if isinstance(config, Config):
                return config
            if isinstance(config, dict):
                return _from_data(config, "<dict>", {})
            text, source = _read(config)
            data, marks = _parse_yaml(text, source)
            return _from_data(data, source, marks)
        except ConfigError as exc:  # its traceback starts here: the parser's and validators' frames say nothing
            raise exc.with_traceback(None) from None

    def rule_specs(self) -> dict[str, RuleSpec]:
        """Configured rules, or the default set when ``rules`` is None; disabled ones dropped."""
        if self.rules is None:
            return {k: RuleSpec(type=k) for k, c in builtin_rules().items() if c.in_default_set}
        return {k: v for k, v in self.rules.items() if v.enabled}

    def user_actions(self) -> dict[str, Callable[..., Any]]:
        """The ``package.module:function`` actions of the enabled rules, each resolved to its callable.

        :meth:`load` has resolved them already (locating a failure in the file). The callbacks call
        this when they are built, which also checks a Config made by hand or unpickled in another
        process, and keep the result, so a finding imports nothing.

        Raises:
            ConfigError: a reference that does not import, names nothing, or is not callable.
        """
        ctx = _Ctx(self.source, {})
        return {ref: _user_action(ref, ("rules", name, "actions", i), ctx)
                for name, spec in self.rule_specs().items() for i, ref in enumerate(spec.actions or ()) if ":" in ref}

    def with_overrides(self, **changes: Any) -> Config:
        """Copy with top-level fields replaced (``None`` values are ignored), validated like the file's
        (``interval=0`` would otherwise reach the training loop)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        # only the fields given so far stay given: ``interval`` pins the schedule only when set
        given = {k: v for k, v in dict(self).items() if k in self.model_fields_set or k == "source"}
        if "interval" in changes:  # a keyword interval overrides a config's budget
            given["overhead_budget"] = None
        try:
            return type(self).model_validate({**given, **changes})
        except ValidationError as exc:
            raise _Ctx("<keyword arguments>", {}).pydantic(exc, (), list(changes)) from None


def _read(config: str | os.PathLike) -> tuple[str, str]:
    text = str(config)
    looks_like_path = "\n" not in text and (text.endswith((".yaml", ".yml")) or ":" not in text
                                             or Path(text).is_file())
    if isinstance(config, os.PathLike) or looks_like_path:
        path = Path(config)
        if not path.is_file():
            raise ConfigError("config file not found", source=str(path))
        return path.read_text(encoding="utf-8"), str(path)
    return text, "<yaml>"


def _parse_yaml(text: str, source: str) -> tuple[Any, dict[tuple, tuple[int, int]]]:
    """Safe-load YAML and record the line/column of every key path."""
    marks: dict[tuple, tuple[int, int]] = {}

    def walk(n: Any, path: tuple, open_nodes: tuple) -> None:
        at = (n.start_mark.line + 1, n.start_mark.column + 1)
        if id(n) in open_nodes:  # an alias that contains itself
            raise ConfigError("recursive YAML alias: a value that contains itself", source=source,
                              path=".".join(map(str, path)), line=at[0], column=at[1])
        marks.setdefault(path, at)
        if len(marks) > _MAX_NODES:  # alias bombs ("billion laughs") expand exponentially
            raise ConfigError(f"the config expands to more than {_MAX_NODES} values (nested aliases?)",
                              source=source, path=".".join(map(str, path)), line=at[0], column=at[1])
        inner = open_nodes + (id(n),)
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                if not isinstance(k, yaml.ScalarNode):  # a complex key: safe_load below says what is wrong
                    continue
                key = k.value
                marks[path + (key,)] = (k.start_mark.line + 1, k.start_mark.column + 1)
                walk(v, path + (key,), inner)
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, path + (i,), inner)

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    if node is not None:
        walk(node, (), ())
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    return ({} if data is None else data), marks


#: what PyYAML's context of a syntax error opened, for the message
_OPENED = {"while parsing a flow mapping": "{", "while parsing a flow sequence": "["}


def _yaml_error(exc: yaml.YAMLError, source: str) -> ConfigError:
    """A located ConfigError for a YAML syntax error. Where the problem began elsewhere (an
    unclosed bracket, noticed lines later), that place is named too.

    Example:
        >>> try:
        ...     yaml.safe_load("rules:\\n  dead_relu: {patience: 3\\n  overfit: {}\\n")
        ... except yaml.YAMLError as exc:
        ...     print(_yaml_error(exc, "t.yaml"))
        t.yaml:3:10: invalid YAML: expected ',' or '}', but got ':' (the '{' at line 2, column 14 is not closed)
    """
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    began = getattr(exc, "context_mark", None)
    if began is not None and (mark is None or (began.line, began.column) != (mark.line, mark.column)):
        where = f"line {began.line + 1}, column {began.column + 1}"
        bracket = _OPENED.get(getattr(exc, "context", None) or "")
        problem += f" (the '{bracket}' at {where} is not closed)" if bracket else f" ({exc.context} at {where})"
    return ConfigError(f"invalid YAML: {problem}", source=source, line=mark.line + 1 if mark else None,
                       column=mark.column + 1 if mark else None)


class _Ctx:
    """Makes ConfigErrors located by key path, and collects the problems of one config, so that
    one pass reports every one (:meth:`finish`)."""

    def __init__(self, source: str, marks: dict[tuple, tuple[int, int]]) -> None:
        self.source, self.marks = source, marks
        self.found: list[ConfigError] = []

    def report(self, error: ConfigError) -> None:
        """Keep ``error``, unless it lies at or under a key already reported (a consequence of
        that problem, such as the bad value an unset variable left behind)."""
        if not any(error.path == e.path or error.path.startswith(e.path + ".") or not e.path for e in self.found):
            self.found.append(error)

    def attempt(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, or None with its ConfigError reported."""
        try:
            return fn(*args)
        except ConfigError as exc:
            for error in exc.errors:
                self.report(error)
            return None

    def finish(self) -> None:
        """Raise the first problem found, carrying the others (:attr:`ConfigError.more`)."""
        if self.found:
            first, *more = sorted(self.found, key=lambda e: (e.line is None, e.line or 0, e.column or 0))
            first.more = more
            raise first

    def error(self, path: tuple, problem: str) -> ConfigError:
        probe = path
        while probe and probe not in self.marks:
            probe = probe[:-1]
        line, col = self.marks.get(probe, (None, None))
        return ConfigError(problem, source=self.source, path=".".join(str(p) or "''" for p in path),
                           line=line, column=col)

    def warn(self, path: tuple, problem: str) -> None:
        """Log a warning located like an error (file, line, key path)."""
        log.warning("tripwire: %s", self.error(path, problem))

    def pydantic(self, exc: ValidationError, base: tuple, fields: Any,
                 given_as: dict[str, str] | None = None) -> ConfigError:
        """The errors of ``exc``, located under ``base``: the first, carrying the others
        (:attr:`ConfigError.more`); ``given_as`` maps a field to the key the input used for it (a
        parameter's former name)."""
        first, *more = [self._pydantic(err, base, fields, given_as) for err in exc.errors()]
        first.more = more
        return first

    def _pydantic(self, err: Any, base: tuple, fields: Any, given_as: dict[str, str] | None) -> ConfigError:
        loc = tuple(err["loc"])
        if loc and given_as:
            loc = (given_as.get(str(loc[0]), loc[0]), *loc[1:])
        loc = base + loc
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            if isinstance(fields, type) and issubclass(fields, BaseModel):
                fields = _keys_at(fields, tuple(err["loc"][:-1]))
            valid = sorted(fields) if fields is not None else []
            return self.error(loc, f"unknown key '{key}'{suggest(key, valid)}; valid keys: {', '.join(valid)}")
        got = err.get("input")
        return self.error(loc, f"{err['msg']} (got {_show(got)})")


def _keys_at(model: type[BaseModel], loc: tuple) -> set[str]:
    """The keys valid at ``loc`` inside ``model`` (the nested section's own keys, e.g. those of
    ``actions.rate_limit``).

    Example:
        >>> sorted(_keys_at(Config, ("actions", "rate_limit")))
        ['alerts', 'window_s']
    """
    for part in loc:
        field = model.model_fields.get(str(part))
        kinds = () if field is None else (field.annotation, *get_args(field.annotation))
        nested = [t for t in kinds if isinstance(t, type) and issubclass(t, BaseModel)]
        if not nested:
            break
        model = nested[0]
    return set(model.model_fields) - {"source"}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def _interpolate(value: Any, path: tuple, ctx: _Ctx) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string."""
    if isinstance(value, dict):
        return {k: _interpolate(v, path + (k,), ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, path + (i,), ctx) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        def sub(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            ctx.report(ctx.error(path, f"environment variable {name} is not set (referenced as ${{{name}}}; "
                                       f"${{{name}:-}} makes it optional)"))
            return ""
        return _ENV.sub(sub, value)
    return value


def _from_data(data: Any, source: str, marks: dict) -> Config:
    ctx = _Ctx(source, marks)
    if not isinstance(data, dict):
        raise ctx.error((), f"the config must be a mapping of keys to values (got {type(data).__name__})")
    data = _interpolate(data, (), ctx)
    raw_rules = data.get("rules", None)
    top = {k: v for k, v in data.items() if k != "rules"}
    base = ctx.attempt(_validated, Config, top, (), ctx)
    rules = None
    if raw_rules is not None or "rules" in data:
        if not isinstance(raw_rules, dict):
            ctx.report(ctx.error(("rules",), f"'rules' must map rule names to settings (got {_show(raw_rules)})"))
        else:
            rules = {str(name): ctx.attempt(_rule_spec, str(name), body, ctx) for name, body in raw_rules.items()}
    ctx.finish()
    return base.model_copy(update={"rules": rules, "source": source})


def _validated(model: type[BaseModel], data: dict, path: tuple, ctx: _Ctx) -> BaseModel:
    """``model`` validated from ``data``; a ConfigError at ``path`` carrying every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ctx.pydantic(exc, path, model) from None


def _user_action(ref: str, path: tuple, ctx: _Ctx) -> Callable[..., Any]:
    """The callable that the action ``ref`` names, imported now (a ConfigError at ``path`` if none)."""
    try:
        fn = resolve(ref)
    except (ValueError, ImportError, AttributeError) as exc:
        raise ctx.error(path, f"cannot load action {ref!r}: {exc}; {_VALID_ACTIONS}") from None
    if not callable(fn):
        raise ctx.error(path, f"cannot load action {ref!r}: it is not callable (got {_show(fn)}); {_VALID_ACTIONS}")
    return fn


def _current_names(params: dict[str, Any], cls: Any, path: tuple, ctx: _Ctx) -> tuple[dict[str, Any], dict[str, str]]:
    """``params`` with the former names of renamed parameters (``Params.renamed``) replaced by the
    current ones, each logged as deprecated where the config uses it; and which current name was
    given under which former name, to locate a bad value where the config wrote it."""
    renamed = getattr(cls.Params, "renamed", {})
    given_as = {}
    for former, current in renamed.items():
        if former not in params:
            continue
        if current in params:
            raise ctx.error(path + (former,), both_names(former, current))
        ctx.warn(path + (former,), deprecated_name(former, current))
        given_as[current] = former
    return {renamed.get(k, k): v for k, v in params.items()}, given_as


def _rule_spec(name: str, body: Any, ctx: _Ctx) -> RuleSpec:
    path = ("rules", name)
    if body is None:
        body = {}
    if isinstance(body, bool):
        body = {"enabled": body}
    if not isinstance(body, dict):
        raise ctx.error(path, f"a rule's settings must be a mapping (got {_show(body)})")
    if True in body and "on" not in body:  # YAML 1.1 reads the key `on:` as the boolean true
        body = {("on" if k is True else k): v for k, v in body.items()}
    kind = str(body.get("type", name))
    try:
        cls = rule_class(kind)
    except KeyError as exc:
        raise ctx.error(path + (("type",) if "type" in body else ()), exc.args[0]) from None
    except (ValueError, ImportError, AttributeError, TypeError) as exc:
        raise ctx.error(path + ("type",), f"cannot load rule '{kind}': {exc}; valid: 'package.module:ClassName' "
                                          "naming a subclass of tripwire.Rule, or a built-in rule type") from None
    actions = body.get("actions")
    if actions is not None:
        if isinstance(actions, str):
            actions = [actions]
        if not isinstance(actions, list):
            ctx.report(ctx.error(path + ("actions",), f"actions must be a list (got {_show(actions)})"))
            actions = None
    remediations: dict[str, dict[str, Any]] = {}
    names: list[str] = []
    for i, action in enumerate(actions or ()):
        if isinstance(action, dict):
            action = ctx.attempt(_remediation, action, path + ("actions", i), ctx, remediations)
            if action is None:
                continue
        names.append(str(action))
        if isinstance(action, str) and ":" in action:
            ctx.attempt(_user_action, action, path + ("actions", i), ctx)
        elif action not in ACTIONS:
            ctx.report(ctx.error(path + ("actions", i), f"unknown action {_show(action)}"
                                                        f"{suggest(str(action), ACTIONS)}; {_VALID_ACTIONS}"))
        elif action in REMEDIATIONS and action not in getattr(cls, "remediations", ()):
            able = ", ".join(k for k, c in builtin_rules().items() if action in c.remediations)
            ctx.report(ctx.error(path + ("actions", i), f"rule type '{kind}' cannot {action}: {WHY_NOT[action]}; "
                                                        f"rule types that can: {able}"))
    severity = body.get("severity")
    if severity is not None and severity not in ("info", "warning", "error"):
        ctx.report(ctx.error(path + ("severity",), f"unknown severity {_show(severity)}; valid: info, warning, error"))
    rearm_after = body.get("rearm_after")
    if rearm_after is not None and (isinstance(rearm_after, bool) or not isinstance(rearm_after, int)
                                    or rearm_after < 1):
        ctx.report(ctx.error(path + ("rearm_after",), f"rearm_after must be a whole number of samples >= 1 "
                                                      f"(got {_show(rearm_after)}); valid: 1 (re-arm at the first "
                                                      f"clear sample) or more, default {cls.rearm_after}"))
        rearm_after = None
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        ctx.report(ctx.error(path + ("enabled",), f"enabled must be true or false (got {_show(enabled)})"))
        enabled = True
    params, given_as = _current_names({k: v for k, v in body.items() if k not in _RULE_COMMON}, cls, path, ctx)
    try:
        validated = cls.Params.model_validate(params)
    except ValidationError as exc:
        fields = list(cls.Params.model_fields) + list(_RULE_COMMON)
        raise ctx.pydantic(exc, path, fields, given_as) from None
    return RuleSpec(type=kind, params=validated.model_dump(exclude_unset=True),
                    actions=None if actions is None else tuple(names), enabled=enabled,
                    severity=None if severity is None else str(severity), rearm_after=rearm_after,
                    remediations=remediations)


def _remediation(action: dict, path: tuple, ctx: _Ctx, into: dict[str, dict[str, Any]]) -> str:
    """The name of a remediation written with parameters (``{reduce_lr: {factor: 0.3}}``); its
    validated parameters go ``into`` the spec's remediations."""
    if len(action) != 1:
        raise ctx.error(path, f"an action with parameters is a mapping of one remediation to its parameters, "
                              f"e.g. {{reduce_lr: {{factor: 0.5}}}} (got {_show(action)})")
    [(name, params)] = action.items()
    if name not in PARAMETERS:
        raise ctx.error(path, f"unknown remediation {_show(name)}{suggest(str(name), REMEDIATIONS)}; "
                              f"valid with parameters: {', '.join(REMEDIATIONS)}")
    model = PARAMETERS[name]
    try:
        into[name] = model.model_validate(params or {}).model_dump(exclude_unset=True)
    except ValidationError as exc:
        raise ctx.pydantic(exc, path + (name,), model.model_fields) from None
    return str(name)
