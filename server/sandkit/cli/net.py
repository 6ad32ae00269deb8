"""`sandkit proxy serve`, `sandkit policy check|log|approve|deny|pending` (`sandkit
secret` is in cli/secret.py)."""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sandkit.cli.options import add_kit_arg_option
from sandkit.errors import ProxyError
from sandkit.hostconfig import registry_args, registry_hosts
from sandkit.net.actions import Action, DefaultPolicy
from sandkit.net.decisions import Decision, read_log
from sandkit.paths import state_dir
from sandkit.ui import table

if TYPE_CHECKING:
    from sandkit.kits.model import KitContent
    from sandkit.net.inject import BoundCredential


def default_log() -> Path:
    return state_dir() / "proxy" / "decisions.jsonl"


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    formatter: type[argparse.HelpFormatter],
) -> None:
    proxy = commands.add_parser(
        "proxy",
        help="run the egress proxy on its own (try a policy with curl)",
        description="The egress proxy that sandboxes send all traffic through.",
        formatter_class=formatter,
    )
    verbs = proxy.add_subparsers(dest="verb", metavar="VERB", required=True)
    serve = verbs.add_parser(
        "serve",
        formatter_class=formatter,
        help="serve the proxy until Ctrl-C",
        description="Serve the egress proxy with the network rules and credentials of kits.\n"
        "Prints 'listening on PROXY_URL ca=CA_CERT' when ready; runs until SIGINT/SIGTERM.\n"
        "PROXY_URL (http://sandkit:TOKEN@HOST:PORT) holds a token made for this run: the\n"
        "proxy injects your real credentials, so it serves only requests that carry it.",
        epilog="example:\n  sandkit proxy serve --kit github --default deny-all\n"
        "  curl -x PROXY_URL --cacert CA_CERT https://api.github.com/",
    )
    _policy_options(serve)
    serve.add_argument(
        "--listen",
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="address to listen on (default: 127.0.0.1 and a free port)",
    )
    serve.add_argument(
        "--log",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"decision log (JSON lines; default: {default_log()})",
    )
    serve.add_argument(
        "--upstream-ca",
        type=Path,
        default=None,
        metavar="FILE",
        help="extra CA to trust for upstream TLS (e.g. a corporate TLS-inspection CA)",
    )
    serve.add_argument(
        "--resolve",
        action="append",
        default=[],
        metavar="HOST=IP",
        help="pin HOST to IP (as curl --resolve); a pinned address may be internal",
    )

    policy = commands.add_parser(
        "policy",
        help="check a host against kits' rules; show the decision log",
        description="Network policy: check targets, read the decision log.",
        formatter_class=formatter,
    )
    pverbs = policy.add_subparsers(dest="verb", metavar="VERB", required=True)
    check = pverbs.add_parser(
        "check",
        formatter_class=formatter,
        help="would a request be allowed?",
        description="Decide TARGET (host, host:port or URL; a bare host means "
        "port 443)\nwith the kits' rules. Exit 0 if allowed, 1 if denied.",
    )
    _policy_options(check)
    check.add_argument("target", metavar="TARGET")
    logp = pverbs.add_parser(
        "log",
        formatter_class=formatter,
        help="blocked and allowed requests",
        description="Blocked and allowed requests from a decision log, "
        "aggregated by host, rule and reason.",
    )
    logp.add_argument(
        "logfile",
        nargs="?",
        type=Path,
        default=None,
        metavar="SANDBOX|LOGFILE",
        help=f"a sandbox's name, or a decision log file (default: {default_log()})",
    )
    logp.add_argument("--json", action="store_true", help="print the records as JSON lines")
    logp.add_argument("--follow", action="store_true", help="keep printing new records")
    for verb, action in (("approve", "allow"), ("deny", "deny")):
        answer = pverbs.add_parser(
            verb,
            formatter_class=formatter,
            help=f"{action} a held request (from another terminal)",
            description=f"{verb.capitalize()} the requests sandbox NAME holds for HOST (a host no\n"
            f"rule covers, waiting for an answer), and {action} HOST for the rest of the\n"
            "sandbox's life (kept across stop/start) unless --once is given.",
            epilog=f"example:\n  sandkit policy {verb} claude-proj api.example.com",
        )
        answer.add_argument("name", metavar="NAME", help="the sandbox")
        answer.add_argument("host", metavar="HOST", help="host name, or HOST:PORT")
        answer.add_argument("--once", action="store_true", help="answer only the requests held now")
    pending = pverbs.add_parser("pending", help="requests a sandbox holds for an answer")
    pending.add_argument("name", metavar="NAME", help="the sandbox")
    pending.add_argument("--json", action="store_true", help="print JSON")


def _policy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kit",
        action="append",
        default=[],
        metavar="PATH",
        help="kit whose rules and credentials apply (repeatable; built-in name or path)",
    )
    add_kit_arg_option(parser)
    parser.add_argument(
        "--default",
        type=DefaultPolicy,
        default=DefaultPolicy.BALANCED,
        choices=list(DefaultPolicy),
        metavar="{allow-all,balanced,deny-all}",
        help="what happens to hosts no rule names (default: balanced)",
    )


def run(args: argparse.Namespace) -> int:
    if args.command == "proxy":
        return asyncio.run(serve(args))
    if args.command == "policy":
        if args.verb in ("approve", "deny", "pending"):
            return asyncio.run(held(args))
        return check(args) if args.verb == "check" else show_log(args)
    raise AssertionError(args.command)  # `secret` is cli/secret.py's


def _content(args: argparse.Namespace) -> tuple[KitContent, list[str]]:
    from sandkit.net.service import merged_kits

    defaults = registry_args()
    content, warnings = merged_kits(args.kit, {**defaults, **dict(args.kit_arg)})
    for w in warnings:
        print(w.format(), file=sys.stderr)
    return content, registry_hosts(defaults)


async def serve(args: argparse.Namespace) -> int:
    from sandkit.net.access import TokenAccess
    from sandkit.net.proxy import EgressProxy
    from sandkit.net.service import build_settings

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise ProxyError(f"--listen '{args.listen}' is not HOST:PORT")
    pins = {}
    for item in args.resolve:
        name, sep, ip = item.partition("=")
        if not sep:
            raise ProxyError(f"--resolve '{item}' is not HOST=IP")
        pins[name] = ip
    content, registries = _content(args)
    settings, bound = build_settings(
        content,
        default=args.default,
        log_path=args.log or default_log(),
        pins=pins,
        upstream_ca=args.upstream_ca,
        registry_hosts=registries,
    )
    # Any local user can reach a TCP port: only a client holding this run's token may use
    # the proxy (and so the credentials it injects).
    settings.access = TokenAccess()
    async with EgressProxy(settings) as proxy:  # closes the log and the CA, whatever happens
        try:
            bound_host, bound_port = await proxy.start(host.strip("[]"), int(port))
        except OSError as exc:
            raise ProxyError(f"cannot listen on {args.listen}: {exc.strerror}") from None
        _tell_credentials(bound)
        url = settings.access.url(bound_host, bound_port)
        print(f"listening on {url} ca={settings.ca.cert_path}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    return 0


def _tell_credentials(bound: list[BoundCredential]) -> None:
    from sandkit.net.secrets import SecretStore, credential_lookup

    for b in bound:
        state = "set" if b.value else "NOT SET: run `sandkit secret set " + b.service + "`"
        if not b.value:  # kit-named host sources the user has not allowed: say how
            for note in credential_lookup(b.credential, SecretStore()).notes:
                print(f"credential {b.service}: {note}", file=sys.stderr)
        if b.credential.env:
            print(
                f"credential {b.service} ({state}): {b.credential.env}={b.placeholder}",
                file=sys.stderr,
            )


def _target(text: str) -> tuple[str, int]:
    if "://" in text:
        url = urlsplit(text)
        if not url.hostname:
            raise ProxyError(f"no host in '{text}'")
        return url.hostname, url.port or (80 if url.scheme == "http" else 443)
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and "]" not in port and host.count(":") == 0:
        return host, int(port)
    if text.startswith("[") and "]:" in text:
        inner, _, port = text[1:].partition("]:")
        return inner, int(port)
    return text.strip("[]"), 443


def check(args: argparse.Namespace) -> int:
    from sandkit.net.service import build_policy

    content, registries = _content(args)
    host, port = _target(args.target)
    verdict = build_policy(content, args.default, registries).decide(host, port)
    allowed = verdict.action is Action.ALLOW
    print(f"{'allowed' if allowed else 'denied'}: {host}:{port} ({verdict.describe()})")
    return 0 if allowed else 1


def show_log(args: argparse.Namespace) -> int:
    path = args.logfile or default_log()
    if args.logfile is not None and not path.exists() and "/" not in str(args.logfile):
        from sandkit.sandbox.store import SandboxError, Store

        with contextlib.suppress(SandboxError):  # a sandbox's name: its own log
            path = Store().get(str(args.logfile)).dir / "decisions.jsonl"
    if not path.exists():
        raise ProxyError(
            f"no decision log at {path}: start `sandkit proxy serve` or a sandbox first"
        )
    records = read_log(path)
    if args.json:
        for r in records:
            print(r.to_json())
    else:
        _tables(records)
    if args.follow:
        _follow(path, args.json)
    return 0


def _tables(records: list[Decision]) -> None:
    groups: dict[tuple[str, str, str, str], list[Decision]] = collections.defaultdict(list)
    for r in records:
        groups[(r.action, f"{r.host}:{r.port}", r.rule or "-", r.reason)].append(r)
    for action, title in (("blocked", "Blocked requests:"), ("allowed", "Allowed requests:")):
        rows = [
            (k[1], k[2], k[3], str(len(v)), max(x.time for x in v)[:19].replace("T", " "))
            for k, v in groups.items()
            if k[0] == action
        ]
        print(title)
        if not rows:
            print("  (none)")
        else:
            rows.sort(key=lambda row: row[4], reverse=True)
            text = table(rows, ("HOST", "RULE", "REASON", "COUNT", "LAST SEEN"))
            print("\n".join("  " + line for line in text.splitlines()))
        print()


def _follow(path: Path, as_json: bool) -> None:
    with path.open() as f, contextlib.suppress(KeyboardInterrupt):
        f.seek(0, 2)
        while True:
            line = f.readline()
            if not line:
                time.sleep(0.2)
                continue
            try:
                r = Decision.from_json(line)
            except (ValueError, TypeError):
                continue
            print(
                r.to_json()
                if as_json
                else f"{r.time[11:19]} {r.action:<7} {r.method:<7} {r.host}:{r.port} {r.reason} {r.rule or ''}",
                flush=True,
            )


async def held(args: argparse.Namespace) -> int:
    """Answer or list a running sandbox's held requests through its supervisor."""
    from sandkit.sandbox import lifecycle
    from sandkit.sandbox.store import Store

    async with await lifecycle.connect(Store().get(args.name)) as client:
        if args.verb == "pending":
            items = (await client.pending()).held
            if args.json:
                print(json.dumps([i.model_dump(mode="json") for i in items], indent=2))
            elif not items:
                print(f"{args.name} holds no requests")
            else:
                rows = [
                    (str(i.id), f"{i.host}:{i.port}", f"{time.time() - i.since:.0f}s")
                    for i in items
                ]
                print(table(rows, ("ID", "HOST", "WAITING")))
            return 0
        answer = client.approve if args.verb == "approve" else client.deny
        result = await answer(args.host, remember=not args.once)
    action = "allowed" if args.verb == "approve" else "denied"
    count = result.answered
    held_part = f"{count} held request{'s' if count != 1 else ''} {action}"
    if result.remembered:
        print(f"{held_part}; {args.host} is {action} in {args.name} from now on")
    elif count:
        print(held_part)
    else:
        print(f"{args.name} holds no request for {args.host}", file=sys.stderr)
        return 1
    return 0
