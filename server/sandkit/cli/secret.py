"""`sandkit secret set|ls|rm|allow-file`: the values the proxy injects and the OAuth
sign-ins it keeps, all on the host. A change reaches running sandboxes at once (their
supervisors are told); the placeholders in the guests stay as they are."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import time

from sandkit.errors import ProxyError


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    formatter: type[argparse.HelpFormatter],
) -> None:
    secret = commands.add_parser(
        "secret",
        help="store credentials the proxy injects",
        description="Secrets live on the host only; sandboxes get placeholders (API keys)\n"
        "or sentinels (OAuth tokens). A change applies to running sandboxes at once.",
        formatter_class=formatter,
    )
    sverbs = secret.add_subparsers(dest="verb", metavar="VERB", required=True)
    sset = sverbs.add_parser(
        "set",
        help="store a value (read from stdin)",
        description="Store the value for SERVICE, read from standard input\n"
        "(prompted without echo on a terminal).",
        epilog="example:\n  pass show anthropic | sandkit secret set anthropic",
        formatter_class=formatter,
    )
    sset.add_argument("service", metavar="SERVICE")
    sset.add_argument(
        "--from-env",
        metavar="VAR",
        help="store nothing: let the proxy read host variable VAR for SERVICE (kits may name "
        "host variables, but they are read only once you allow them here)",
    )
    _scope(sset)
    sallow = sverbs.add_parser(
        "allow-file",
        help="let a kit read SERVICE's value from the host file it names",
        description="A kit (schemaVersion 1 sources.file) may name a host file to read a\n"
        "credential from. sandkit reads it only once you allow it for that kit; the approval\n"
        "is remembered by the kit's digest, so a changed kit asks again. Regular files of at\n"
        "most 64 KiB only.",
        epilog="example:\n  sandkit secret allow-file github --kit ./kits/gh-cli",
        formatter_class=formatter,
    )
    sallow.add_argument("service", metavar="SERVICE")
    sallow.add_argument("--kit", required=True, metavar="PATH", help="the kit that names it")
    sallow.add_argument("--yes", action="store_true", help="do not ask")
    sverbs.add_parser(
        "ls", help="list stored values and OAuth sign-ins (with their expiry), never values"
    )
    srm = sverbs.add_parser("rm", help="remove a stored value")
    srm.add_argument("service", metavar="SERVICE")
    srm.add_argument(
        "--oauth", action="store_true", help="remove the OAuth sign-in instead of the API key"
    )
    _scope(srm)


def _scope(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sandbox",
        metavar="NAME",
        help="for this sandbox only (default: every sandbox, global)",
    )


def run(args: argparse.Namespace) -> int:
    from sandkit.net.secrets import SecretStore, SourceGrants

    scope = getattr(args, "sandbox", None)
    store = SecretStore(sandbox=scope)
    if args.verb == "set" and args.from_env:
        SourceGrants().allow_env(args.service, args.from_env)
        state = "set" if os.environ.get(args.from_env) else "not set in this shell"
        print(f"{args.service}: the proxy reads host variable {args.from_env} ({state} now)")
    elif args.verb == "set":
        value = (
            getpass.getpass(f"value for {args.service}: ")
            if sys.stdin.isatty()
            else sys.stdin.read()
        )
        store.set(args.service, value.strip())
        print(f"stored {args.service} in {store.path}")
    elif args.verb == "allow-file":
        return allow_file(args)
    elif args.verb == "ls":
        return list_secrets()
    elif args.oauth:
        from sandkit.net.tokens import TokenStore

        if not TokenStore().remove(args.service, scope):
            raise ProxyError(f"no OAuth sign-in for '{args.service}'")
    elif not store.remove(args.service):
        raise ProxyError(f"no stored value for '{args.service}'")
    if args.verb in ("set", "rm"):
        _tell_running(scope)
    return 0


def _tell_running(scope: str | None) -> None:
    """The running sandboxes the change concerns read their credentials again."""
    from sandkit.sandbox import lifecycle
    from sandkit.sandbox.store import SandboxError, Store

    store = Store()
    if scope is not None:
        try:
            sandboxes = [store.get(scope)]
        except SandboxError:
            return  # not made yet: it reads the store when it starts
    else:
        sandboxes = [s for s in store.all() if not lifecycle.is_pool_member(s)]
    for name in asyncio.run(lifecycle.credentials_changed(sandboxes)):
        print(f"sandkit: {name} was not told; it uses the change after a restart", file=sys.stderr)


def list_secrets() -> int:
    from sandkit.net.secrets import SecretStore
    from sandkit.net.tokens import TokenStore
    from sandkit.ui import table

    rows: list[tuple[str, str, str, str]] = []
    for service in SecretStore().services():
        rows.append((service, "api key", "global", ""))
    scoped = SecretStore().global_path.parent / "sandbox-secrets"
    for path in sorted(scoped.glob("*.json")) if scoped.is_dir() else []:
        for service in SecretStore(sandbox=path.stem).services():
            rows.append((service, "api key", f"sandbox {path.stem}", ""))
    now = time.time()
    for scope, service, tokens in TokenStore().entries():
        expiry = ""
        if tokens.expires_at is not None:
            stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(tokens.expires_at))
            expiry = stamp + (" (expired)" if tokens.expires_at < now else "")
        where = "global" if scope == "global" else scope.replace("sandbox:", "sandbox ", 1)
        kind = "oauth" + (" +refresh" if tokens.refresh else "")
        rows.append((service, kind, where, expiry))
    print(table(sorted(rows), ("SERVICE", "KIND", "SCOPE", "EXPIRES")))
    return 0


def allow_file(args: argparse.Namespace) -> int:
    from sandkit.kits.resolution import load_ref
    from sandkit.net.secrets import SourceGrants, unallowed_file_sources

    kit = load_ref(args.kit).kit
    creds = [c for c in kit.credentials if c.service == args.service]
    if not any(c.sources is not None and c.sources.file for c in creds):
        raise ProxyError(f"kit {args.kit} names no host file for '{args.service}'")
    grants = SourceGrants()
    for source in unallowed_file_sources(creds, grants):
        if not args.yes:
            if not sys.stdin.isatty():
                raise ProxyError("not a terminal: pass --yes to allow without a question")
            if input(f"{source.question()} [y/N] ").strip().lower() not in ("y", "yes"):
                print("not allowed")
                return 1
        grants.allow_file(source.service, source.path, source.digest)
        print(f"allowed: {source.path} for '{source.service}' in this version of kit {kit.name}")
    return 0
