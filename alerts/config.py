"""config/alerts.yaml: the routing tree, offices and their channels, inhibition rules, timings.

The model is Prometheus Alertmanager's (matchers, a routing tree with ``continue``, ``group_by``,
``group_wait`` / ``group_interval`` / ``repeat_interval``, inhibition rules with ``equal``), read
from YAML. Receivers are offices named by a template over the alert's labels, such as
``district:{region_code}``: one route serves every district office of the province. Errors name
the file and the key.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotline.core.reference import ConfigError, read_yaml

_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(d|h|m|s)\s*$")
CHANNEL_TYPES = ("file", "email", "dingtalk", "wecom", "feishu", "webhook")
KINDS = ("spike", "drop", "level_shift", "emerging", "spread")


@dataclass(frozen=True)
class Matcher:
    """``label="v"``, ``label!="v"``, ``label=~"regex"`` or ``label!~"regex"`` (regexes are
    anchored, as in Alertmanager). A missing label matches as the empty string."""

    label: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str, where: str = "matcher") -> "Matcher":
        m = _MATCHER.match(str(text))
        if not m:
            raise ConfigError(f'{where}: {text!r} is not a matcher (label="value", label!="value", '
                              f'label=~"regex" or label!~"regex")')
        label, op, value = m.group(1), m.group(2), m.group(3).replace('\\"', '"')
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ConfigError(f"{where}: {text!r}: bad regular expression: {exc}") from None
        return cls(label, op, value)

    def __post_init__(self):
        if self.op in ("=~", "!~"):
            object.__setattr__(self, "_re", re.compile(f"^(?:{self.value})$"))

    def matches(self, labels: Mapping[str, Any]) -> bool:
        v = labels.get(self.label)
        v = "" if v is None else str(v)
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        hit = self._re.match(v) is not None  # type: ignore[attr-defined]
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f'{self.label}{self.op}"{self.value}"'


def parse_matchers(items: Any, where: str) -> tuple[Matcher, ...]:
    if items is None:
        return ()
    if isinstance(items, str) or not isinstance(items, (list, tuple)):
        raise ConfigError(f"{where}: a list of matchers is expected, got {items!r}")
    return tuple(Matcher.parse(x, f"{where}[{i}]") for i, x in enumerate(items))


def matches_all(matchers: tuple[Matcher, ...], labels: Mapping[str, Any]) -> bool:
    return all(m.matches(labels) for m in matchers)


def parse_duration(value: Any, where: str) -> dt.timedelta:
    """``30m``, ``4h``, ``1d`` or ``0s`` (a bare number is seconds)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.timedelta(seconds=float(value))
    m = _DURATION.match(str(value))
    if not m:
        raise ConfigError(f"{where}: {value!r} is not a duration such as 30m, 4h or 1d")
    n, unit = float(m.group(1)), m.group(2)
    return dt.timedelta(**{{"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}[unit]: n})


@dataclass(frozen=True)
class Route:
    """One node of the routing tree; children inherit what they do not set."""

    receiver: str
    matchers: tuple[Matcher, ...] = ()
    group_by: tuple[str, ...] = ()
    group_wait: dt.timedelta = dt.timedelta(0)
    group_interval: dt.timedelta = dt.timedelta(days=1)
    repeat_interval: dt.timedelta = dt.timedelta(days=3)
    send_resolved: bool = False
    cont: bool = False
    routes: tuple["Route", ...] = ()
    path: str = "route"

    def match(self, labels: Mapping[str, Any]) -> list["Route"]:
        """The routes that take an alert: the deepest matching nodes, Alertmanager's way (first
        matching child unless it says ``continue``; this node when no child matches)."""
        if not matches_all(self.matchers, labels):
            return []
        out: list[Route] = []
        for child in self.routes:
            got = child.match(labels)
            if got:
                out.extend(got)
                if not child.cont:
                    break
        return out or [self]


TOP_KEYS = ("route", "inhibit_rules", "channels", "offices", "resolve_after_days", "delivery", "language",
            "report_base_url", "samples_per_alert")
DELIVERY_KEYS = ("attempts_per_run", "backoff_seconds", "max_backoff_seconds", "retry_after",
                 "give_up_after_attempts", "timeout_seconds", "circuit_breaker_after")


def _only_known(doc: Mapping[str, Any], known: Any, file: Path, where: str) -> None:
    """A typo (``inhibit_rule:``) is an error naming the file, the place and the known keys, not a
    setting silently left at its default."""
    unknown = sorted(set(doc) - set(known))
    if unknown:
        at = f"{file}: {where}: " if where else f"{file}: "
        raise ConfigError(f"{at}unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")


def _label_list(value: Any, where: str) -> tuple[str, ...]:
    """A list of label names (``group_by: [office]``); a bare string would be read letter by letter."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: a list of label names is expected, e.g. [office], got {value!r}")
    return tuple(value)


def _route(doc: Mapping[str, Any], parent: Route | None, path: str, file: Path) -> Route:
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{file}: {path}: a mapping is expected")
    known = {"receiver", "matchers", "group_by", "group_wait", "group_interval", "repeat_interval",
             "send_resolved", "continue", "routes"}
    unknown = set(doc) - known
    if unknown:
        raise ConfigError(f"{file}: {path}: unknown key(s) {', '.join(sorted(unknown))} "
                          f"(known: {', '.join(sorted(known))})")
    base = parent or Route(receiver="")
    receiver = str(doc.get("receiver") or base.receiver)
    if not receiver:
        raise ConfigError(f"{file}: {path}.receiver: the root route needs a receiver")
    r = Route(
        receiver=receiver,
        matchers=parse_matchers(doc.get("matchers"), f"{file}: {path}.matchers") if parent else (),
        group_by=_label_list(doc["group_by"], f"{file}: {path}.group_by") if "group_by" in doc else base.group_by,
        group_wait=parse_duration(doc["group_wait"], f"{file}: {path}.group_wait") if "group_wait" in doc
        else base.group_wait,
        group_interval=parse_duration(doc["group_interval"], f"{file}: {path}.group_interval")
        if "group_interval" in doc else base.group_interval,
        repeat_interval=parse_duration(doc["repeat_interval"], f"{file}: {path}.repeat_interval")
        if "repeat_interval" in doc else base.repeat_interval,
        send_resolved=bool(doc.get("send_resolved", base.send_resolved)),
        cont=bool(doc.get("continue", False)),
        path=path,
    )
    kids = doc.get("routes") or []
    if not isinstance(kids, list):
        raise ConfigError(f"{file}: {path}.routes: a list is expected")
    return Route(**{**r.__dict__, "routes": tuple(_route(k, r, f"{path}.routes[{i}]", file)
                                                  for i, k in enumerate(kids))})


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]


@dataclass(frozen=True)
class Delivery:
    """How the outbox is delivered. ``attempts_per_run`` caps the tries of one notice in one run
    (a timeout ends them at one: the receiver may have it); ``circuit_breaker_after``
    consecutive timeouts or connection failures on one channel skip its other notices for the
    run; ``timeout_seconds`` (a channel may set its own) bounds each request."""

    attempts_per_run: int = 3
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 60.0
    retry_after: dt.timedelta = dt.timedelta(minutes=30)
    give_up_after_attempts: int = 20
    timeout_seconds: float = 10.0
    circuit_breaker_after: int = 2


@dataclass(frozen=True)
class AlertsConfig:
    route: Route
    inhibit_rules: tuple[InhibitRule, ...]
    channels: dict[str, dict[str, Any]]
    offices: dict[str, list[str]]  # office id -> channel names
    office_defaults: dict[str, list[str]]  # role -> channel names
    office_names: dict[str, dict[str, str]]  # role -> {zh: template, en: template}
    resolve_after_days: dict[str, int]
    language: str = "zh"
    report_base_url: str | None = None
    samples_per_alert: int = 2
    delivery: Delivery = field(default_factory=Delivery)
    path: Path | None = None

    @classmethod
    def load(cls, config_dir: str | Path) -> "AlertsConfig":
        path = Path(config_dir) / "alerts.yaml"
        return cls.from_dict(read_yaml(path) or {}, path)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], path: Path | str = "alerts.yaml") -> "AlertsConfig":
        path = Path(path)
        _only_known(doc, TOP_KEYS, path, "")
        if "route" not in doc:
            raise ConfigError(f"{path}: route: the routing tree is missing")
        route = _route(doc["route"], None, "route", path)
        rules = []
        for i, r in enumerate(doc.get("inhibit_rules") or []):
            where = f"{path}: inhibit_rules[{i}]"
            if not isinstance(r, Mapping) or "source_matchers" not in r or "target_matchers" not in r:
                raise ConfigError(f"{where}: source_matchers and target_matchers are required")
            _only_known(r, ("source_matchers", "target_matchers", "equal"), path, f"inhibit_rules[{i}]")
            _label_list(r.get("equal") or [], f"{where}.equal")
            rules.append(InhibitRule(parse_matchers(r["source_matchers"], f"{where}.source_matchers"),
                                     parse_matchers(r["target_matchers"], f"{where}.target_matchers"),
                                     tuple(r.get("equal") or ())))
        channels = dict(doc.get("channels") or {})
        for name, spec in channels.items():
            if not isinstance(spec, Mapping) or spec.get("type") not in CHANNEL_TYPES:
                raise ConfigError(f"{path}: channels.{name}.type: one of {', '.join(CHANNEL_TYPES)} is required")
            if spec["type"] == "email" and not spec.get("to"):
                raise ConfigError(f"{path}: channels.{name}.to: an email channel needs recipients")
        offices_doc = dict(doc.get("offices") or {})
        defaults = dict(offices_doc.pop("defaults", {}) or {})
        names = dict(offices_doc.pop("names", {}) or {})
        for where, table in (("offices.defaults", defaults), ("offices", offices_doc)):
            for key, chans in table.items():
                if isinstance(chans, str):
                    chans = [chans]
                    table[key] = chans
                for c in chans:
                    if c not in channels:
                        raise ConfigError(f"{path}: {where}.{key}: unknown channel {c!r} "
                                          f"(defined: {', '.join(sorted(channels)) or 'none'})")
        resolve = {k: 2 for k in KINDS}
        for k, v in (doc.get("resolve_after_days") or {}).items():
            if k not in KINDS:
                raise ConfigError(f"{path}: resolve_after_days.{k}: unknown kind (known: {', '.join(KINDS)})")
            resolve[k] = int(v)
        d = dict(doc.get("delivery") or {})
        _only_known(d, DELIVERY_KEYS, path, "delivery")
        try:
            delivery = Delivery(
                attempts_per_run=int(d.get("attempts_per_run", 3)),
                backoff_seconds=float(d.get("backoff_seconds", 2.0)),
                max_backoff_seconds=float(d.get("max_backoff_seconds", 60.0)),
                retry_after=parse_duration(d.get("retry_after", "30m"), f"{path}: delivery.retry_after"),
                give_up_after_attempts=int(d.get("give_up_after_attempts", 20)),
                timeout_seconds=float(d.get("timeout_seconds", 10.0)),
                circuit_breaker_after=max(int(d.get("circuit_breaker_after", 2)), 1),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: delivery: {exc}") from None
        lang = str(doc.get("language", "zh"))
        if lang not in ("zh", "en"):
            raise ConfigError(f"{path}: language: zh or en, got {lang!r}")
        return cls(route=route, inhibit_rules=tuple(rules), channels=channels, offices=offices_doc,
                   office_defaults=defaults, office_names=names, resolve_after_days=resolve, language=lang,
                   report_base_url=doc.get("report_base_url"), samples_per_alert=int(doc.get("samples_per_alert", 2)),
                   delivery=delivery, path=path)

    def channels_of(self, office: str) -> list[str]:
        """The channel names of an office id (``district:440306``): its own, else its role's."""
        if office in self.offices:
            return list(self.offices[office])
        return list(self.office_defaults.get(office.split(":", 1)[0], []))
