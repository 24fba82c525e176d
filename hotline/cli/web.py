"""The served site: users add|list|disable (the offices' accounts), serve (the site itself)."""
from __future__ import annotations

import getpass
import os

import click

from hotline.cli.base import _emit, _fail, _runtime, db_option, json_option, main


@main.group()
def users():
    """The offices' accounts on the served site (hotline serve): each belongs to one office of the
    routing tree and sees that office's region only."""


@users.command("add")
@click.argument("username")
@click.option("--office", required=True,
              help="district:<code>, city:<code>, department:<city code>:<department>, province:<code> or operator.")
@click.option("--name", "display_name", default=None, help="The name shown on the pages and in the history.")
@click.option("--password-env", default=None,
              help="Read the password from this environment variable (else it is asked for, twice).")
@click.option("--by", "created_by", default=lambda: os.environ.get("USER") or "operator", show_default="$USER")
@db_option
@json_option
@click.pass_context
def users_add(ctx, username, office, display_name, password_env, created_by, db_url, as_json):
    """Add an account (the password is stored as an argon2id hash, never as given)."""
    from hotline.app.accounts import AccountError, add_user

    if password_env:
        password = os.environ.get(password_env) or ""
        if not password:
            _fail(f"--password-env: environment variable {password_env} is not set")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            _fail("the passwords differ")
    rt = _runtime(ctx, db_url)
    try:
        uid = add_user(rt.engine, username, office, password, created_by, rt.ref, rt.province, display_name)
    except AccountError as exc:
        _fail(str(exc))
    _emit({"id": uid, "username": username.strip().lower(), "office": office}, as_json,
          [f"account {username.strip().lower()} added for {office}"])


@users.command("list")
@db_option
@json_option
@click.pass_context
def users_list(ctx, db_url, as_json):
    """The accounts, with their office and whether they are disabled."""
    from hotline.app.accounts import list_users

    rows = list_users(_runtime(ctx, db_url).engine)
    lines = [f"{len(rows)} account(s)"] + [
        f"  {r['username']:<20} {r['office']:<28} {r['display_name'] or '':<12} "
        + (f"disabled {r['disabled_at']:%Y-%m-%d} by {r['disabled_by']}" if r["disabled_at"] else "active")
        for r in rows]
    _emit({"users": rows}, as_json, lines)


@users.command("disable")
@click.argument("username")
@click.option("--by", default=lambda: os.environ.get("USER") or "operator", show_default="$USER")
@db_option
@json_option
@click.pass_context
def users_disable(ctx, username, by, db_url, as_json):
    """Disable an account: it can no longer sign in, and its open sessions end now."""
    from hotline.app.accounts import AccountError, disable_user

    try:
        disable_user(_runtime(ctx, db_url).engine, username, by)
    except AccountError as exc:
        _fail(str(exc))
    _emit({"username": username, "disabled_by": by}, as_json, [f"account {username} disabled"])


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 32),
              help="Server processes (the compose stack runs one per core).")
@click.option("--insecure-cookies", is_flag=True,
              help="Cookies without the Secure flag, for a plain-http address other than localhost (not for "
                   "production: put the site behind TLS instead).")
@click.option("--forwarded-allow-ips", default=lambda: os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
              show_default="$FORWARDED_ALLOW_IPS or 127.0.0.1",
              help="The TLS proxy's address: only its X-Forwarded-For is believed, so that the sign-in limit "
                   "counts each office's address, not the proxy's.")
@db_option
@click.pass_context
def serve(ctx, host, port, workers, insecure_cookies, forwarded_allow_ips, db_url):
    """Serve the warning site: each office signs in and sees its region's alerts and lists,
    acknowledges with its verdict, silences after a preview, and downloads its lists. The secret is
    HOTLINE_WEB_SECRET, else var/web-secret (made on first use)."""
    import uvicorn

    from hotline.app.accounts import web_secret

    rt = _runtime(ctx, db_url)  # the warehouse migrated once, before the workers start
    web_secret(os.environ, rt.settings.var_dir, create=True)
    os.environ["HOTLINE_DB_URL"] = rt.settings.db_url  # the workers' settings: this command's
    if insecure_cookies:
        os.environ["HOTLINE_WEB_INSECURE_COOKIES"] = "1"
    click.echo(f"serving the warning site on http://{host}:{port}/ (Ctrl-C stops it)", err=True)
    uvicorn.run("hotline.web.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="warning", proxy_headers=True, forwarded_allow_ips=forwarded_allow_ips)
