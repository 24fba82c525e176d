"""Notices as offices read them: Chinese by default, English by config, with the numbers that
matter (observed vs expected and its range, how unusual, since when, where, what drove it, what
citizens said, a link to the chart), in each channel's own format.

Every string that leaves goes through :func:`hotline.core.pii.mask_outgoing` once more, whatever was
masked on ingest: a notice never carries a phone number, an ID number or a caller's name.

Text we did not write (what citizens said, street names from the tickets, an analyst's reason)
is made inert where it is placed into a message, by one function per format: :func:`inert_md`
(robots' markdown, .md files), :func:`inert_html` (e-mail and pages) and :func:`inert_text`
(plain text). Our own markup (bold titles, bullets, the link to the chart) is never escaped.
JSON documents (.jsonl, the webhook's ``alerts``) carry the masked text as data, unescaped.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from alerts.config import AlertsConfig
from hotline.core.pii import mask_outgoing
from hotline.core.rarity import frequency, p_of
from hotline.core.reference import Reference

SEVERITY = {"zh": {"red": "红色", "orange": "橙色", "yellow": "黄色"},
            "en": {"red": "RED", "orange": "ORANGE", "yellow": "YELLOW"}}
SEVERITY_MARK = {"red": "🔴", "orange": "🟠", "yellow": "🟡"}
KIND = {"zh": {"spike": "突增", "drop": "骤降", "level_shift": "持续变化", "emerging": "新发问题",
               "spread": "多区扩散"},
        "en": {"spike": "spike", "drop": "drop", "level_shift": "level shift", "emerging": "emerging issue",
               "spread": "spreading across districts"}}
OFFICE_NAMES = {
    "province": {"zh": "{name}12345热线督办处", "en": "{name_en} 12345 supervision office"},
    "city": {"zh": "{name}12345热线中心", "en": "{name_en} 12345 hotline centre"},
    "district": {"zh": "{city}{name}12345工作站", "en": "{name_en} ({city_en}) 12345 office"},
    "department": {"zh": "{city}{department}", "en": "{city_en} {department}"},
    "operators": {"zh": "{name}12345预警平台运维值班", "en": "{name_en} 12345 early-warning operations"},
}


# ---------------------------------------------------------------- text we did not write, made inert
_LINK = re.compile(r"(?i)(?<![a-z])(?:(https?|ftp)://|(?=www\.))([^\s/?#]+)")
_DEFANGED = {"http": "hxxp", "https": "hxxps", "ftp": "fxp"}
_MD_SPECIAL = re.compile(r"[\\`*_\[\]()#!|~]")
_MD_PLACEHOLDER = re.compile(r"\\\[([\u4e00-\u9fff]{1,8})\\\](?!:)")


def defang(text: str) -> str:
    """The one rule for links in text we did not write, in every format: a URL keeps its words but
    loses its power, as security teams write them, so that no renderer (robots, mail clients,
    markdown viewers) links it: the scheme is spelt with x and the host's dots are bracketed.
    ``http://evil.example/x`` -> ``hxxp://evil[.]example/x``; ``www.evil.example`` ->
    ``www[.]evil[.]example``."""
    def sub(m: re.Match[str]) -> str:
        scheme = f"{_DEFANGED[m[1].lower()]}://" if m[1] else ""
        return scheme + m[2].replace(".", "[.]")
    return _LINK.sub(sub, text)


def inert_md(text: str) -> str:
    """Text as markdown shows it, never as markup: one line (a line break could start a heading
    or a list), URLs defanged, ``\\ ` * _ [ ] ( ) # ! | ~`` backslash-escaped, ``<`` and ``>`` as
    ``&lt;`` ``&gt;`` (no tag, even where a robot ignores backslashes). The PII placeholders
    (``[手机号]``, ``[姓名]``: CJK words in brackets) keep their brackets: with every ``(`` and
    ``[`` after them escaped, and not followed by ``:``, they can be neither a link nor a link
    definition."""
    text = _MD_SPECIAL.sub(lambda m: "\\" + m[0], defang(" ".join(str(text).splitlines())))
    return _MD_PLACEHOLDER.sub(r"[\1]", text.replace("<", "&lt;").replace(">", "&gt;"))


def inert_html(text: str) -> str:
    """Text for an HTML body: escaped (a tag shows as text) and URLs defanged (mail clients link
    a bare URL)."""
    return escape(defang(str(text)))


def inert_text(text: str) -> str:
    """Text for a plain-text body (e-mail, the webhook's ``text``): URLs defanged, as mail clients
    link them, and ``<`` ``>`` as fullwidth ＜ ＞, so that a receiver pasting it into a page gets
    no tag."""
    return defang(str(text)).replace("<", "＜").replace(">", "＞")


# Message size limits of the robots (bytes of the markdown text); longer notices are cut at an
# alert boundary with a pointer to the rest.
LIMITS = {"wecom": 4000, "dingtalk": 18000, "feishu": 28000}


def office_name(office: str, ref: Reference, cfg: AlertsConfig | None, lang: str) -> str:
    """``district:440306`` -> 深圳市宝安区12345工作站 (templates in config ``offices.names``)."""
    role, _, rest = office.partition(":")
    parts = rest.split(":")
    code = parts[0]
    names = {**OFFICE_NAMES.get(role, {}), **((cfg.office_names if cfg else {}).get(role) or {})}
    tmpl = names.get(lang) or names.get("zh") or "{office}"
    city = ref.regions.district_parent().get(code, code if role != "province" else "")
    values = {"office": office, "name": ref.regions.name(code, "zh"), "name_en": ref.regions.name(code, "en"),
              "city": ref.regions.name(city, "zh") if city else "",
              "city_en": ref.regions.name(city, "en") if city else "",
              "department": parts[1] if len(parts) > 1 else ""}
    try:
        return tmpl.format(**values)
    except (KeyError, IndexError):
        return office


def rarity(a: Mapping[str, Any], lang: str) -> str:
    """How unusual, as a frequency the office can check on its own series ("约每 N 天一次"), from
    the alert's calibrated tail probability and the series' days on record."""
    return frequency(p_of(a.get("surprise"), a.get("score")), a.get("history_days"), lang)


def _num(v: Any) -> str:
    if v is None:
        return "—"
    v = float(v)
    return f"{v:.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.1f}"


def _surprise(a: Mapping[str, Any]) -> str:
    p = p_of(a.get("surprise"), a.get("score"))
    return "—" if p is None else f"{-math.log10(max(p, 1e-300)):.1f}"


@dataclass
class AlertView:
    """One alert's lines, in one language."""

    fingerprint: str
    state: str
    severity: str
    title: str
    lines: list[str]
    link: str | None


def place_name(labels: Mapping[str, Any]) -> str:
    """深圳市宝安区 for a district, 深圳市 for a city, 广东省 for the province."""
    if labels["region_level"] == "district":
        return f"{labels['city_name']}{labels['region_name']}"
    return labels["region_name"]


def alert_view(a: Mapping[str, Any], lang: str, ds: dt.date, link: str | None) -> AlertView:
    lab = a["labels"]
    where = place_name(lab)
    kind = KIND[lang].get(a["kind"], a["kind"])
    sev = a["severity"]
    obs, exp, lo, hi = a.get("observed"), a.get("expected"), a.get("lower"), a.get("upper")
    ratio = (float(obs) / float(exp)) if exp not in (None, 0) and obs is not None else None
    starts = a["starts_on"]
    days = (ds - starts).days + 1 if isinstance(starts, dt.date) else None
    samples = [mask_outgoing(s) for s in (a.get("samples") or [])]
    if lang == "en":
        title = f"{SEVERITY['en'][sev]} · {where} · {lab['category_name']} · {kind}"
        if a["state"] == "resolved":
            title = f"RESOLVED · {where} · {lab['category_name']} · {kind}"
        rng = f" (normal range {_num(lo)}–{_num(hi)})" if lo is not None and hi is not None else ""
        lines = [f"Observed {_num(obs)} tickets, expected {_num(exp)}{rng}"
                 + (f", {ratio:.1f}× expected" if ratio is not None else ""),
                 f"How unusual: {rarity(a, 'en')} for this series (surprise {_surprise(a)})",
                 f"Since {starts} (day {days})" if a["state"] == "firing" else f"Resolved on {a.get('ends_on')}",
                 f"Detail (zh): {mask_outgoing(a.get('explanation') or '')}",
                 f"Detectors: {a.get('detectors')} · alert id {a['fingerprint'][:8]}"]
        lines += [f"Citizens said: {s}" for s in samples]
    else:
        title = f"{SEVERITY['zh'][sev]}预警 · {where} · {lab['category_name']} · {kind}"
        if a["state"] == "resolved":
            title = f"已恢复 · {where} · {lab['category_name']} · {kind}"
        rng = f"（正常范围 {_num(lo)}–{_num(hi)} 件）" if lo is not None and hi is not None else ""
        lines = [f"当日 {_num(obs)} 件，预期 {_num(exp)} 件{rng}"
                 + (f"，为预期的 {ratio:.1f} 倍" if ratio is not None else ""),
                 f"异常程度：本序列{rarity(a, 'zh')}（意外度 {_surprise(a)}）",
                 f"起始：{starts}（第 {days} 天）" if a["state"] == "firing" else f"已于 {a.get('ends_on')} 恢复正常",
                 f"说明：{mask_outgoing(a.get('explanation') or '')}",
                 f"检测器：{a.get('detectors')} · 预警编号 {a['fingerprint'][:8]}"]
        lines += [f"典型诉求：{s}" for s in samples]
    return AlertView(a["fingerprint"], a["state"], sev, mask_outgoing(title), [mask_outgoing(x) for x in lines], link)


@dataclass
class Message:
    subject: str
    markdown: str
    text: str
    html: str
    views: list[AlertView]


def compose(receiver_name: str, ds: dt.date, firing: Sequence[Mapping[str, Any]],
            resolved: Sequence[Mapping[str, Any]], lang: str, links: Mapping[str, str],
            limit_bytes: int | None = None) -> Message:
    """The notice for one group: subject, markdown (robots), plain text and HTML (email)."""
    views = [alert_view(a, lang, ds, links.get(a["fingerprint"])) for a in [*firing, *resolved]]
    counts = {s: sum(1 for a in firing if a["severity"] == s) for s in ("red", "orange", "yellow")}
    served = any(str(x).startswith(("http://", "https://")) for x in links.values())  # the site: act from the page
    if lang == "en":
        parts = ", ".join(f"{n} {SEVERITY['en'][s].lower()}" for s, n in counts.items() if n)
        subject = f"[12345 early warning] {receiver_name}: {len(firing)} alert(s)" + (f" ({parts})" if parts else "")
        if resolved:
            subject += f", {len(resolved)} resolved"
        subject += f" · {ds}"
        head = f"{receiver_name} · {ds} · firing {len(firing)}, resolved {len(resolved)}"
        footer = ("Please check and act (first-receiver responsibility). If an alert is not useful, say so: "
                  + ("open its page to acknowledge it with your verdict (useful / not useful)" if served else
                     "`hotline alerts ack <id> --verdict not_useful`") + " helps tune the detectors.")
        chart = "Open: acknowledge, verdict, silence" if served else "Chart"
        more = "more alert(s) not shown here: see the warning board"
    else:
        parts = "、".join(f"{SEVERITY['zh'][s][0]} {n}" for s, n in counts.items() if n)
        subject = f"【12345预警】{receiver_name}：{len(firing)} 条预警" + (f"（{parts}）" if parts else "")
        if resolved:
            subject += f"，{len(resolved)} 条已恢复"
        subject += f" · {ds}"
        head = f"{receiver_name} · {ds} · 预警 {len(firing)} 条，已恢复 {len(resolved)} 条"
        footer = ("请按首接负责制核实处置，未诉先办。"
                  + ("如预警无效，请打开预警页面确认并反馈“无用”，" if served else
                     "如预警无效，请反馈（hotline alerts ack <编号> --verdict not_useful），")
                  + "用于检测调优。")
        chart = "打开预警页面（确认·反馈·静默）" if served else "图表"
        more = "条预警未在此列出，请查看预警看板"
    md_blocks, txt_blocks = [], []
    for i, v in enumerate(views, 1):
        mark = SEVERITY_MARK.get(v.severity, "") if v.state == "firing" else "✅"
        link = f"\n- [{chart}]({v.link})" if v.link else ""
        md_blocks.append(f"**{i}. {mark} {inert_md(v.title)}**\n" + "\n".join(f"- {inert_md(x)}" for x in v.lines)
                         + link)
        txt_blocks.append(f"{i}. {inert_text(v.title)}\n" + "\n".join(f"   {inert_text(x)}" for x in v.lines)
                          + (f"\n   {chart}: {v.link}" if v.link else ""))
    md_head = f"### {inert_md(subject)}\n{inert_md(head)}\n"
    if limit_bytes:
        kept, size = [], len((md_head + footer).encode())
        for b in md_blocks:
            if size + len(b.encode()) + 2 > limit_bytes - 200:
                break
            kept.append(b)
            size += len(b.encode()) + 2
        if len(kept) < len(md_blocks):
            kept.append(f"……{len(md_blocks) - len(kept)} {more}")
        md_blocks = kept
    markdown = md_head + "\n" + "\n\n".join(md_blocks) + f"\n\n{footer}"
    text = f"{subject}\n{head}\n\n" + "\n\n".join(txt_blocks) + f"\n\n{footer}\n"
    html = _html(subject, head, views, footer, chart, lang)
    return Message(mask_outgoing(subject), mask_outgoing(markdown), mask_outgoing(text), mask_outgoing(html), views)


_SEV_COLOR = {"red": "#c0392b", "orange": "#d35400", "yellow": "#b7950b"}


def _html(subject: str, head: str, views: Sequence[AlertView], footer: str, chart: str, lang: str) -> str:
    items = []
    for v in views:
        color = _SEV_COLOR.get(v.severity, "#555") if v.state == "firing" else "#2e7d32"
        lis = "".join(f"<li>{inert_html(x)}</li>" for x in v.lines)
        link = f'<li><a href="{escape(v.link)}">{escape(chart)}</a></li>' if v.link else ""
        items.append(f'<h3 style="color:{color};margin:12px 0 4px">{inert_html(v.title)}</h3><ul>{lis}{link}</ul>')
    return (f'<!doctype html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">'
            f"<title>{escape(subject)}</title></head><body style=\"font-family:'Noto Sans CJK SC','Microsoft YaHei',"
            f'sans-serif"><h2>{escape(subject)}</h2><p>{escape(head)}</p>{"".join(items)}'
            f"<p>{escape(footer)}</p></body></html>")


def report_message(subject: str, lines: Sequence[str], tail: str = "", link: str = "", link_text: str = "",
                   mask: bool = True) -> Message:
    """A notice that is not an alert (a proposal, a brief, a district's overdue list) in every
    channel's form: the subject, one bullet per line (lines starting with two spaces are nested),
    an optional closing sentence and link (ours: the only live link). ``mask``: PII-mask the
    subject, lines and tail (free text inside) before they are placed, each made inert for its
    format; a list of ticket ids, categories and deadlines has no PII and must stay readable."""
    if mask:
        subject, tail, lines = mask_outgoing(subject), mask_outgoing(tail), [mask_outgoing(x) for x in lines]

    def md_line(x: str) -> str:
        return f"  - {inert_md(x.strip())}" if x.startswith("  ") else f"- {inert_md(x)}"

    md = (f"### {inert_md(subject)}\n" + "\n".join(md_line(x) for x in lines)
          + (f"\n\n{inert_md(tail)}" if tail else "") + (f"\n\n[{inert_md(link_text)}]({link})" if link else ""))
    text = (f"{inert_text(subject)}\n" + "\n".join(inert_text(x if x.startswith("  ") else f"  {x}") for x in lines)
            + "\n" + (f"{inert_text(tail)}\n" if tail else "") + (f"{link_text}: {link}\n" if link else ""))
    body = (f"<h2>{inert_html(subject)}</h2><ul>" + "".join(f"<li>{inert_html(x.strip())}</li>" for x in lines)
            + "</ul>" + (f"<p>{inert_html(tail)}</p>" if tail else "")
            + (f'<p><a href="{escape(link)}">{escape(link_text)}</a></p>' if link else ""))
    return Message(subject, md, text, body, [])


MAX_BUTTONS = 5


def channel_payload(channel_type: str, msg: Message, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The request body each channel sends (before any signature is added at send time)."""
    # on the served site each alert's (signed) page is a button: DingTalk's ActionCard, Feishu's card
    buttons = [(f"{i}. {v.title}"[:40], v.link) for i, v in enumerate(msg.views, 1)
               if v.link and v.link.startswith(("https://", "http://"))][:MAX_BUTTONS]
    if channel_type == "dingtalk":
        if buttons:
            return {"msgtype": "actionCard", "actionCard": {
                "title": msg.subject, "text": msg.markdown, "btnOrientation": "0",
                "btns": [{"title": t, "actionURL": u} for t, u in buttons]}}
        return {"msgtype": "markdown", "markdown": {"title": msg.subject, "text": msg.markdown}}
    if channel_type == "wecom":  # a group robot's markdown: its links open in WeCom's browser
        return {"msgtype": "markdown", "markdown": {"content": msg.markdown}}
    if channel_type == "feishu":
        worst = next((v.severity for v in msg.views if v.state == "firing"), None)
        template = {"red": "red", "orange": "orange", "yellow": "yellow"}.get(worst or "", "green")
        elements: list[dict[str, Any]] = [{"tag": "markdown", "content": msg.markdown}]
        if buttons:
            elements.append({"tag": "action", "actions": [
                {"tag": "button", "text": {"tag": "plain_text", "content": t}, "url": u,
                 "type": "primary" if i == 0 else "default"} for i, (t, u) in enumerate(buttons)]})
        return {"msg_type": "interactive",
                "card": {"header": {"title": {"tag": "plain_text", "content": msg.subject}, "template": template},
                         "elements": elements}}
    if channel_type == "email":
        return {"subject": msg.subject, "text": msg.text, "html": msg.html}
    # webhook and file: an Alertmanager-like document with the rendered text
    return {"version": "1", "status": "firing" if meta.get("firing") else "resolved",
            "receiver": meta.get("receiver"), "receiver_name": meta.get("receiver_name"),
            "groupKey": meta.get("group_key"), "groupLabels": meta.get("group_labels"), "ds": str(meta.get("ds")),
            "dedupKey": meta.get("dedup_key"), "subject": msg.subject, "text": msg.text, "markdown": msg.markdown,
            "alerts": [_public_alert(a, meta.get("links", {})) for a in meta.get("alerts", [])]}


def _rounded(v: Any, digits: int) -> float | None:
    return None if v is None else round(float(v), digits)


def _public_alert(a: Mapping[str, Any], links: Mapping[str, str]) -> dict[str, Any]:
    """An alert for machines: figures rounded to what they mean (a float's 16 digits say nothing
    and read like an account number to a PII filter), the calibrated tail as p and surprise."""
    p = p_of(a.get("surprise"), a.get("score"))
    return {"fingerprint": a["fingerprint"], "status": a["state"],
            "labels": {k: mask_outgoing(str(v)) for k, v in a["labels"].items()},
            "startsOn": str(a["starts_on"]), "endsOn": str(a["ends_on"]) if a.get("ends_on") else None,
            **{k: _rounded(a.get(k), 2) for k in ("observed", "expected", "lower", "upper")},
            "score": _rounded(a.get("score"), 6), "pValue": None if p is None else float(f"{p:.3g}"),
            "surprise": None if p is None else round(-math.log10(max(p, 1e-300)), 2),
            "howUnusual": {"zh": rarity(a, "zh"), "en": rarity(a, "en")},
            "historyDays": a.get("history_days"), "explanation": mask_outgoing(a.get("explanation")),
            "samples": [mask_outgoing(x) for x in a.get("samples") or []], "link": links.get(a["fingerprint"])}
