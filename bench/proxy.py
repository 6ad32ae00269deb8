"""Benchmark: the egress proxy against direct connections, tinyproxy and mitmproxy, all
measured in this run on this machine. Needs `bench/setup` (wrk, tinyproxy, mitmproxy).

  1. HTTP forwarding, 1 KiB responses, 32 connections (wrk): requests/s
  2. CONNECT tunnel, one 512 MiB download (curl -p): throughput
  3. TLS-terminated requests with a credential injected (16 keep-alive connections): requests/s

Prints each figure and its ratios; exits 1 when a DESIGN.md target is missed:
forwarding >= 1.5x tinyproxy and >= 10x mitmproxy; CONNECT >= 0.6x direct; injection >= 5x
mitmproxy.

    .venv/bin/python bench/proxy.py [--seconds 8] [--big-mib 512]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import trustme

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SANDKIT = str(Path(PY).parent / "sandkit")
MITMDUMP = ROOT / "bench" / ".venv-mitmproxy" / "bin" / "mitmdump"

KIT = """\
schemaVersion: "2"
kind: mixin
name: bench
permissions:
  network:
    allow: [localhost, 127.0.0.1]
credentials:
  - service: bench
    apiKey:
      name: BENCH_KEY
      proxyManaged: true
      inject: [{domain: 127.0.0.1, header: X-Api-Key, format: "%s"}]
"""

MITM_ADDON = """\
from mitmproxy import http

def request(flow: http.HTTPFlow) -> None:
    if flow.request.host == "127.0.0.1":
        flow.request.headers["X-Api-Key"] = "bench-secret"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


@contextlib.contextmanager
def process(
    argv: list[str],
    env: dict[str, str] | None = None,
    ready_port: int | None = None,
) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        if ready_port is not None:
            wait_port(ready_port)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wrk(target_port: int, url: str, seconds: float, via_proxy: bool, tmp: Path) -> float:
    script = tmp / "proxy.lua"
    host = re.sub(r"^https?://([^/]+).*$", r"\1", url)
    script.write_text(f'wrk.path = "{url}"\nwrk.headers["Host"] = "{host}"\n')
    argv = ["wrk", "-t1", "-c32", f"-d{seconds:.0f}s"]
    if via_proxy:
        argv += ["-s", str(script), f"http://127.0.0.1:{target_port}"]
    else:
        argv += [url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or (errors and "timeout 0" not in errors.group(1)):
        print(
            f"    wrk reported problems: {(bad.group(0) if bad else '')} {(errors.group(0) if errors else '')}"
        )
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(match.group(1)) if match else 0.0


def curl_download(url: str, proxy: str | None) -> float:
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", url]
    if proxy:
        argv += ["-p", "-x", proxy]
    size, seconds = subprocess.run(argv, capture_output=True, text=True, timeout=300).stdout.split()
    return int(size) / float(seconds) / 1e9  # GB/s


def load(proxy: str, url: str, ca: Path, seconds: float) -> float:
    out = subprocess.run(
        [
            PY,
            str(ROOT / "bench" / "load.py"),
            "--proxy",
            proxy,
            "--url",
            url,
            "--ca",
            str(ca),
            "--seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    match = re.search(r"requests (\d+) seconds ([\d.]+) errors (\d+)", out)
    if not match:
        return 0.0
    if int(match.group(3)):
        print(f"    load generator saw {match.group(3)} errors")
    return int(match.group(1)) / float(match.group(2))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--big-mib", type=int, default=512)
    args = parser.parse_args()
    for tool in ("wrk", "curl", "tinyproxy"):
        if (
            shutil.which(tool) is None
            and not Path(f"/usr/bin/{tool}").exists()
            and not Path(f"/usr/sbin/{tool}").exists()
        ):
            print(f"{tool} is missing: run bench/setup first")
            return 2
    have_mitm = MITMDUMP.exists()
    tmp = Path(tempfile.mkdtemp(prefix="sandkit-bench-"))
    try:
        return run(args, tmp, have_mitm)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path, have_mitm: bool) -> int:
    ca = trustme.CA()
    origin_ca = tmp / "origin-ca.pem"
    ca.cert_pem.write_to_path(str(origin_ca))
    cert = tmp / "origin.pem"
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(cert))
    big = tmp / "big.bin"
    with big.open("wb") as f:
        f.truncate(args.big_mib << 20)
    kit = tmp / "kit"
    kit.mkdir()
    (kit / "spec.yaml").write_text(KIT)
    http_port, https_port = free_port(), free_port()
    ports = {name: free_port() for name in ("sandkit", "tinyproxy", "mitmproxy")}
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "XDG_STATE_HOME": str(tmp / "state"),
        "BENCH_KEY": "bench-secret",
    }
    tiny_conf = tmp / "tinyproxy.conf"
    tiny_conf.write_text(
        f"Port {ports['tinyproxy']}\nListen 127.0.0.1\nTimeout 600\nMaxClients 512\n"
        "Allow 127.0.0.1\nLogLevel Critical\n"
    )
    addon = tmp / "inject.py"
    addon.write_text(MITM_ADDON)
    tiny = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
    results: dict[str, dict[str, float]] = {"forward": {}, "connect": {}, "inject": {}}
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            process(
                [
                    PY,
                    str(ROOT / "bench" / "origin.py"),
                    "--http",
                    str(http_port),
                    "--https",
                    str(https_port),
                    "--cert",
                    str(cert),
                    "--big",
                    str(big),
                ],
                ready_port=https_port,
            )
        )
        stack.enter_context(
            process(
                [
                    SANDKIT,
                    "proxy",
                    "serve",
                    "--kit",
                    str(kit),
                    "--default",
                    "deny-all",
                    "--listen",
                    f"127.0.0.1:{ports['sandkit']}",
                    "--log",
                    str(tmp / "decisions.jsonl"),
                    "--upstream-ca",
                    str(origin_ca),
                ],
                env=env,
                ready_port=ports["sandkit"],
            )
        )
        stack.enter_context(
            process([tiny, "-d", "-c", str(tiny_conf)], ready_port=ports["tinyproxy"])
        )
        if have_mitm:
            stack.enter_context(
                process(
                    [
                        str(MITMDUMP),
                        "-q",
                        "--listen-host",
                        "127.0.0.1",
                        "-p",
                        str(ports["mitmproxy"]),
                        "--set",
                        f"confdir={tmp / 'mitm'}",
                        "--set",
                        f"ssl_verify_upstream_trusted_ca={origin_ca}",
                        "-s",
                        str(addon),
                    ],
                    ready_port=ports["mitmproxy"],
                )
            )
        sandkit_ca = tmp / "config" / "sandkit" / "ca" / "ca-cert.pem"
        mitm_ca = tmp / "mitm" / "mitmproxy-ca-cert.pem"
        proxies = ["sandkit", "tinyproxy"] + (["mitmproxy"] if have_mitm else [])
        small = f"http://localhost:{http_port}/1k"

        print(f"1. HTTP forwarding, 1 KiB, 32 connections, {args.seconds:.0f} s each (wrk)")
        results["forward"]["direct"] = wrk(http_port, small, args.seconds, False, tmp)
        for name in proxies:
            results["forward"][name] = wrk(ports[name], small, args.seconds, True, tmp)

        print(f"2. CONNECT tunnel, one {args.big_mib} MiB download (curl -p)")
        bigurl = f"http://localhost:{http_port}/big"
        results["connect"]["direct"] = curl_download(bigurl, None)
        for name in ("sandkit", "tinyproxy"):
            results["connect"][name] = curl_download(bigurl, f"http://127.0.0.1:{ports[name]}")

        print("3. TLS terminated + credential injected, 16 keep-alive connections")
        inject_url = f"https://127.0.0.1:{https_port}/1k"
        results["inject"]["sandkit"] = load(
            f"http://127.0.0.1:{ports['sandkit']}", inject_url, sandkit_ca, args.seconds
        )
        if have_mitm:
            results["inject"]["mitmproxy"] = load(
                f"http://127.0.0.1:{ports['mitmproxy']}", inject_url, mitm_ca, args.seconds
            )
    return report(results)


def report(results: dict[str, dict[str, float]]) -> int:
    units = {"forward": "req/s", "connect": "GB/s", "inject": "req/s"}
    print()
    print(f"{'benchmark':<10} {'peer':<10} {'value':>12}   sandkit / peer")
    for bench, row in results.items():
        ours = row.get("sandkit", 0.0)
        for peer, value in row.items():
            ratio = f"{ours / value:6.2f}x" if value and peer != "sandkit" else ""
            fmt = f"{value:12.3f}" if units[bench] == "GB/s" else f"{value:12.0f}"
            print(f"{bench:<10} {peer:<10} {fmt} {units[bench]:<5} {ratio}")
    targets = [
        ("forward >= 1.5x tinyproxy", "forward", "tinyproxy", 1.5),
        ("forward >= 10x mitmproxy", "forward", "mitmproxy", 10.0),
        ("CONNECT >= 0.6x direct", "connect", "direct", 0.6),
        ("injection >= 5x mitmproxy", "inject", "mitmproxy", 5.0),
    ]
    ok = True
    print()
    for label, bench, peer, want in targets:
        base = results[bench].get(peer)
        if not base:
            print(f"target {label}: not measured ({peer} missing)")
            continue
        got = results[bench]["sandkit"] / base
        met = got >= want
        ok &= met
        print(f"target {label}: {got:.2f}x {'met' if met else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
