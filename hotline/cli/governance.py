"""Monthly governance and the offices' pages: propose, board, lights, repeats, ranking."""
from __future__ import annotations

import math
from pathlib import Path

import click

from hotline.cli.base import (
    _city,
    _date,
    _day_or_last,
    _emit,
    _fail,
    _month,
    _runtime,
    _warehouse,
    _working,
    db_option,
    json_option,
    main,
)


@main.command()
@click.option("--month", required=True, help="The evidence month (YYYY-MM): the proposal is for the month after.")
@click.option("--city", "cities", multiple=True, callback=_city,
              help="Only this city (repeatable); default: the province and every city.")
@click.option("--province", "province_only", is_flag=True, help="Only the province's proposal.")
@click.option("--choose", "override", default=None,
              help="Analyst override: the candidate id to choose instead (needs one --city, --by and --reason).")
@click.option("--by", "override_by", default=None, help="Who overrides (kept with the proposal).")
@click.option("--reason", "override_reason", default=None, help="Why (kept with the proposal).")
@click.option("--top", type=int, default=None,
              help="Candidates to print per scope (default: 10 for one city, 3 otherwise).")
@click.option("--deliver", is_flag=True,
              help="Queue and deliver each scope's proposal to its office (config/alerts.yaml).")
@click.option("--explain", is_flag=True, help="Print each principle's contribution to every candidate's score, "
                                              "and the chosen issue's evidence, principle by principle.")
@db_option
@json_option
@click.pass_context
def propose(ctx, month, cities, province_only, override, override_by, override_reason, top, deliver, explain, db_url,
            as_json):
    """每月一题: rank the month's candidate issues by the four principles (high frequency,
    continuity, hard problems, balance) and the outlook, choose one per city and for the province,
    store them and write the proposal (HTML and Markdown, zh and en) with its 苗头 watch list."""

    from hotline.app import monthly
    from proposals.config import COMPONENTS, PRINCIPLES, ProposalsConfigError
    from proposals.job import ProposalError
    from proposals.report import PRINCIPLE_NAMES, evidence_lines, label

    def num(x):
        return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else round(float(x), 3)

    rt = _runtime(ctx, db_url)
    ref = rt.ref
    try:
        with _working(f"ranking the candidate issues of {month} ..."):
            results = monthly.run_proposals(rt, month, cities=list(cities) or None, province_only=province_only,
                                            override=override, override_by=override_by,
                                            override_reason=override_reason)
    except (ProposalError, ProposalsConfigError) as exc:
        _fail(str(exc))
    top = top if top is not None else (10 if len(results) == 1 else 3)
    lines, payload = [], []
    for r in results:
        chosen = r.choice["chosen"]
        name = ref.regions.name(r.scope.code)
        how = "analyst override" if r.override else "model; an earlier override is gone" if r.lost_override else "model"
        lines.append(f"{name} ({r.scope.code}) {r.month}: " + (f"{label(chosen, ref, 'zh')} [{chosen}] ({how})"
                                                                  if chosen else "no candidate"))
        recs = []
        P = PRINCIPLE_NAMES["zh"]
        for i, row in enumerate(r.ranked.head(max(top, 0)).to_dict("records"), 1):
            comps = {c: num(row[f"c_{c}"]) for c in COMPONENTS}
            contrib = {p: num(row[f"contrib_{p}"]) for p in PRINCIPLES}
            recs.append({"rank": i, "candidate": row["candidate"], "name": label(row["candidate"], ref, "zh"),
                         "score": round(float(row["score"]), 4), "tickets": int(row["tickets"]), "components": comps,
                         "principles": contrib, "balance_penalty": num(row["balance_penalty"]),
                         "blocked_by": r.choice["blocked"].get(row["candidate"])})
            flag = f" (held back: chosen {recs[-1]['blocked_by']})" if recs[-1]["blocked_by"] else ""
            head = f"  {i:>2}. {row['score']:.3f} {recs[-1]['name']} [{row['candidate']}] {int(row['tickets'])} tickets"
            if explain:
                parts = [f"{P[p]}({p}) {'—' if v is None else f'{v:+.3f}'}" for p, v in contrib.items()]
                pen = recs[-1]["balance_penalty"] or 0.0
                lines.append(f"{head}{flag}")
                lines.append(f"      = {' '.join(parts)} {P['balance']}(balance) {-pen:+.3f}")
            else:
                shown = " ".join(f"{c}={'—' if v is None else f'{v:.2f}'}" for c, v in comps.items())
                lines.append(f"{head}: {shown}{flag}")
        if explain and chosen and not r.ranked.empty:
            row = r.ranked.set_index("candidate", drop=False).loc[chosen].to_dict()
            lines.append(f"  {label(chosen, ref, 'zh')}：")
            lines += [f"    {x}" for x in evidence_lines(row, name, ref, "zh", r.month)]
        sprouts = [{"candidate": x["candidate"], "name": label(x["candidate"], ref, "zh"), "kind": x["sprout_kind"],
                    "tickets": int(x["tickets"]), "growth_ratio": num(x["growth_ratio"]),
                    "outlook_ratio": num(x["outlook_ratio"])} for x in r.sprouts.to_dict("records")] \
            if not r.sprouts.empty else []
        if sprouts:
            lines.append("  苗头 sprouts: " + "; ".join(f"{x['name']} ({x['kind']}, {x['tickets']})" for x in sprouts))
        rep = (r.report_paths or {}).get("default", {})
        if rep:
            lines.append(f"  proposal: {rep.get('html')} | {rep.get('md')}")
        payload.append({"scope": r.scope.code, "name": name, "month": str(r.month), "chosen": chosen,
                        "model_choice": r.choice["model_choice"], "override": r.override is not None,
                        "watch": r.choice["watch"], "candidates": recs, "sprouts": sprouts, "reports": r.report_paths})
    if deliver:
        lines.append(f"delivery: {monthly.deliver(rt, month, [r.scope.code for r in results])}")
    _emit({"month": month, "scopes": payload}, as_json, lines)


@main.command()
@click.option("--date", "day", callback=_date, default=None,
              help="The day to show (default: the warehouse's last day).")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Folder to write (default: var/site).")
@db_option
@json_option
@click.pass_context
def board(ctx, day, out, db_url, as_json):
    """Build the warning board: a static site (index.html and a page per city) that opens from disk.
    The latest day's goes to var/site; an older day's to var/site/days/<day>, as the daily DAG does."""
    from hotline.app import daily

    rt = _runtime(ctx, db_url)
    day = _day_or_last(rt.engine, rt.settings, day)
    with _working(f"building the board for {day} ..."):
        res = daily.board(rt, day, Path(out) if out else None)
    _emit(res, as_json, [f"board for {day}: {res['index']}"])


@main.command()
@click.option("--date", "day", callback=_date, default=None, help="The day (default: the warehouse's last day).")
@click.option("--city", default=None, callback=_city, help="Only this city.")
@click.option("--top", type=int, default=10, show_default=True, help="Districts, departments and escalations to print.")
@click.option("--send", is_flag=True, help="Send each district its list of yellow and red tickets (the alerts outbox).")
@db_option
@json_option
@click.pass_context
def lights(ctx, day, city, top, send, db_url, as_json):
    """Red/yellow overdue lights (红黄灯): record the day's light changes and escalations, and print
    the open tickets' lights at the day's end by level, district and department."""
    from hotline.app import daily

    rt = _runtime(ctx, db_url)
    day = _day_or_last(rt.engine, rt.settings, day)
    ref = rt.ref
    with _working(f"lights at the end of {day} ..."):
        res = daily.lights(rt, day, city, send)
    esc = res["escalations"]
    lines = [f"lights at the end of {day}: 红 red {res['red']}, 黄 yellow {res['yellow']} of {res['open']} "
             f"open tickets; "
             f"{len(esc)} escalation(s) today; {res['events_recorded']} light change(s) recorded",
             "  by level: " + (", ".join(f"{k} {v}" for k, v in sorted(res["by_level"].items())) or "-")]
    lines += [f"  {d['name']} ({d['region']}): 红 {d['red']} 黄 {d['yellow']}" for d in res["by_district"][:top]]
    lines += [f"  {d['department']}: 红 {d['red']} 黄 {d['yellow']}" for d in res["by_department"][:top]]
    lines += [f"  escalated {e['ticket_id']} -> {e['to']} at {e['at']} ({ref.regions.name(e['region'])})"
              for e in esc[:top]]
    if send:
        li = res.get("lists") or {}
        lines.append(f"  lists (红黄灯日报) for {li.get('offices', 0)} office(s): queued {li.get('queued', 0)}, "
                     f"delivered {li.get('delivered', 0)}" if "lists_held" not in res else f"  {res['lists_held']}")
    _emit(res, as_json, lines)


@main.command()
@click.option("--month", required=True, callback=_month, help="The month (YYYY-MM).")
@click.option("--city", default=None, callback=_city, help="Only this city's places.")
@click.option("--top", type=int, default=10, show_default=True, help="Places and categories to print.")
@db_option
@json_option
@click.pass_context
def repeats(ctx, month, city, top, db_url, as_json):
    """Repeat complaints (同人同事): the same caller about the same category in the same place
    within config/sla.yaml repeat_window_days; rates per district and category stored and printed."""
    from hotline.core.reference import load_reference
    from sla.lights import SlaConfig
    from sla.repeats import month_rates, read_rates

    s, engine = _warehouse(ctx, db_url)
    m = month
    ref = load_reference(s.config_dir)
    cfg = SlaConfig.load(s.config_dir)
    res = month_rates(engine, m, s.province, cfg)
    df = read_rates(engine, m, city)
    lines = [f"repeat complaints in {m}: {res['repeats']} of {res['tickets']} tickets "
             f"(window {cfg.repeat_window_days} days, same caller, category and place)"]
    rows = []
    if not df.empty:
        places = df[df["category_code"] == "*"].sort_values(["rate", "n_repeat"], ascending=False)
        cats = df[(df["category_code"] != "*") & (df["n_repeat"] >= 2)].sort_values(["rate", "n_repeat"],
                                                                                    ascending=False)
        lines.append("  places:")
        lines += [f"    {ref.regions.name(r.region_code)} ({r.region_code}): "
                  f"{r.n_repeat}/{r.n_with_caller} = {r.rate:.1%}"
                  for r in places.head(top).itertuples()]
        lines.append("  place x category (2 repeats or more):")
        lines += [f"    {ref.regions.name(r.region_code)} · {ref.taxonomy.name(r.category_code)}: "
                  f"{r.n_repeat}/{r.n_with_caller} = {r.rate:.1%}" for r in cats.head(top).itertuples()]
        rows = df.drop(columns=["run_id"]).to_dict("records")
    _emit({**res, "rates": rows}, as_json, lines)


@main.command()
@click.option("--month", default=None, callback=_month,
              help="The month (YYYY-MM; default: the last full month in the warehouse).")
@click.option("--level", type=click.Choice(["city", "district", "both"]), default="both", show_default=True,
              help="Rank the cities within their size tier, the districts within their city, or both.")
@click.option("--city", default=None, callback=_city, help="Print only this city's districts (and its tier).")
@click.option("--deliver", is_flag=True, help="Send the province's brief through the alerts outbox.")
@db_option
@json_option
@click.pass_context
def ranking(ctx, month, level, city, deliver, db_url, as_json):
    """The horse race (赛马): rank the cities within their size tier and the districts within their
    city on six category-mix adjusted handling metrics, with last month's ranks, the bottom flagged;
    the province's hotspots and brief; the zh/en report under var/reports/ranking/<month>/."""
    import pandas as pd

    from hotline.app import monthly
    from sla.report import movement

    rt = _runtime(ctx, db_url)
    s, ref = rt.settings, rt.ref
    if month is not None:
        m = month
    else:
        last = pd.Timestamp(_day_or_last(rt.engine, s, None))
        m = last.to_period("M") - (0 if last.is_month_end else 1)  # the last full month
    levels = ("city", "district") if level == "both" else (level,)
    with _working(f"horse race for {m} ..."):
        res = monthly.horse_race(rt, m, levels)
    if deliver:
        res["delivery"] = monthly.send_brief(rt, res)
    if city:
        tier = ref.regions.province(s.province).city(city).tier
        for lv, doc in res["levels"].items():
            doc["groups"] = [g for g in doc["groups"] if g["group"] == (tier if lv == "city" else city)]
    lines = [f"horse race {m} ({res['tickets_closed']:,} tickets closed; category-mix adjusted, "
             "composite 50 = the province's level for the mix):"]
    for lv, doc in res["levels"].items():
        if lv == "district" and level == "both" and not city:  # the console gets one line per city
            lines.append("  districts (ranked within their city; 末位 = bottom, follow-up):")
            for g in doc["groups"]:
                first = next((u for u in g["units"] if u["rank"] == 1), None)
                bottom = [u for u in g["units"] if u["flagged"]]
                lines.append(f"    {g['name']}: {g['ranked']} ranked; first {first['name'] if first else '-'}; "
                             f"末位 {', '.join(u['name'] for u in bottom) or '-'}")
            continue
        for g in doc["groups"]:
            lines.append(f"  {g['name']}:")
            for u in g["units"]:
                mv = "" if u["movement"] is None else f" ({movement(u['movement'])} vs last month)"
                flag = "  <- 末位 follow-up" if u["flagged"] else ""
                lines.append(f"    {u['rank'] if u['rank'] is not None else '-':>2} {u['name']} "
                             f"{u['composite'] if u['composite'] is not None else 'not ranked'}{mv}{flag}")
    lines += ["  brief:"] + [f"    {x}" for x in res["brief"]]
    lines.append(f"  report: {Path(res['reports']['zh']).resolve()}")
    if deliver:
        lines.append(f"  brief queued {res['delivery'].get('queued', 0)}, "
                     f"delivered {res['delivery'].get('delivered', 0)}")
    _emit(res, as_json, lines)
