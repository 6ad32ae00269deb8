"""Benchmark: the language server on a 300-line kit. Targets: didChange to
publishDiagnostics p95 <= 50 ms (with the default 25 ms debounce included), and the time
from starting the server to its answer to `initialize`.

Peer measured in the same run: Red Hat's yaml-language-server (what VS Code's YAML
extension runs) validating the same text against sandkit's JSON Schema (`sandkit kit
schema`), if bench/setup installed it. Prints timings and ratios; exits 1 if a target is
missed.

    .venv/bin/python -m bench.lsp [--changes N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from bench.kit_validate import make_kit, p95

TARGET_MS = 50.0
ROOT = Path(__file__).resolve().parent
YAML_LS = ROOT / ".node" / "node_modules" / ".bin" / "yaml-language-server"


async def measure(
    name: str, argv: list[str], changes: int, settings: dict[str, Any], folder: Path
) -> tuple[float, list[float]]:
    client = LanguageClient("bench", "1")
    published: asyncio.Queue[float] = asyncio.Queue()
    spec = folder / "kit" / "spec.yaml"
    spec.parent.mkdir(parents=True, exist_ok=True)
    uri = spec.as_uri()

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)  # type: ignore[untyped-decorator]
    def diagnostics(ls: LanguageClient, params: types.PublishDiagnosticsParams) -> None:
        if params.uri == uri:
            published.put_nowait(time.perf_counter())

    @client.feature(types.WORKSPACE_CONFIGURATION)  # type: ignore[untyped-decorator]
    def configuration(ls: LanguageClient, params: types.ConfigurationParams) -> list[Any]:
        return [settings.get(item.section or "") for item in params.items]

    for method in (types.CLIENT_REGISTER_CAPABILITY, types.WINDOW_WORK_DONE_PROGRESS_CREATE):
        client.feature(method)(lambda ls, params: None)

    started = time.perf_counter()
    await client.start_io(*argv)
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(
                workspace=types.WorkspaceClientCapabilities(configuration=True)
            ),
            root_uri=folder.as_uri(),
            workspace_folders=[types.WorkspaceFolder(folder.as_uri(), "bench")],
            initialization_options={"sandkit": {}},
        )
    )
    start_ms = (time.perf_counter() - started) * 1000
    client.initialized(types.InitializedParams())
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=settings))
    text = make_kit(300)
    variants = [text, text.replace("kind: sandbox", "kind: sandbx")]  # valid, then not
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "yaml", 1, text))
    )
    await asyncio.wait_for(published.get(), 30)
    samples = []
    for version in range(2, changes + 2):
        while not published.empty():
            published.get_nowait()
        sent = time.perf_counter()
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                [types.TextDocumentContentChangeWholeDocument(text=variants[version % 2])],
            )
        )
        arrived = await asyncio.wait_for(published.get(), 30)
        samples.append((arrived - sent) * 1000)
        await asyncio.sleep(0.06)  # a person's pause between edits: no change is coalesced
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()  # type: ignore[no-untyped-call]
    print(f"  {name}: done", file=sys.stderr)
    return start_ms, samples


async def main_async(changes: int) -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sandkit = shutil.which("sandkit", path=str(Path(sys.executable).parent)) or "sandkit"
        rows.append(
            ("sandkit lsp", await measure("sandkit", [sandkit, "lsp"], changes, {}, folder))
        )
        if YAML_LS.exists():
            schema = folder / "kit.schema.json"
            schema.write_text(subprocess.run([sandkit, "kit", "schema"], capture_output=True,
                                             text=True, check=True).stdout)  # fmt: skip
            settings = {
                "yaml": {"validate": True, "schemas": {schema.as_uri(): "**/spec.yaml"}},
            }
            env_node = [shutil.which("node") or "node", str(YAML_LS.resolve()), "--stdio"]
            peer = await measure("yaml-language-server", env_node, changes, settings, folder)
            rows.append(("yaml-language-server + kit schema", peer))
        else:
            print("(yaml-language-server not installed: run bench/setup for the peer)")
    ours = statistics.median(rows[0][1][1])
    print(f"language server, 300-line kit, {changes} didChange each")
    print(f"{'server':<36} {'start ms':>9} {'p50 ms':>8} {'p95 ms':>8} {'ratio':>7}")
    for name, (start_ms, samples) in rows:
        med = statistics.median(samples)
        print(f"{name:<36} {start_ms:9.0f} {med:8.1f} {p95(samples):8.1f} {med / ours:6.2f}x")
    ok = p95(rows[0][1][1]) <= TARGET_MS
    print(
        f"target: didChange -> diagnostics p95 <= {TARGET_MS:.0f} ms: {'met' if ok else 'MISSED'}"
    )
    print(json.dumps({"sandkit_start_ms": round(rows[0][1][0])}))
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--changes", type=int, default=100)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    return asyncio.run(main_async(args.changes))


if __name__ == "__main__":
    sys.exit(main())
