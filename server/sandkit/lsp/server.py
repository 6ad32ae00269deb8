"""`sandkit lsp`: the language server (pygls 2, stdio; --tcp HOST:PORT for debugging).

Features live in sub-packages, each with a ``register(server)``: ``kitdocs`` makes kits a
language (diagnostics, completion, hover, outline, quick fixes), ``sandboxes`` drives
sandboxes (commands, terminals, decisions as diagnostics, approvals)."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from sandkit import __version__
from sandkit.logs import logger

log = logger("sandkit.lsp")


@dataclass
class Settings:
    """What the editor may set (initializationOptions, workspace/didChangeConfiguration),
    as in the vscode-python-tools-extension-template: camelCase keys under "sandkit"."""

    default_agent: str = "shell"
    default_kits: list[str] = field(default_factory=list)
    docker: bool = False  # new sandboxes get the docker kit (a private Docker Engine)
    approval_timeout: float = 60.0
    debounce_ms: float = 25.0
    # VS Code's Workspace Trust: a trusted workspace's .sandkit.yaml may widen its sandbox.
    workspace_trusted: bool = False

    def update(self, raw: Any) -> None:
        if not isinstance(raw, dict):
            return
        raw = raw.get("sandkit", raw)
        if not isinstance(raw, dict):
            return
        if isinstance(raw.get("defaultAgent"), str):
            self.default_agent = raw["defaultAgent"]
        if isinstance(raw.get("defaultKits"), list):
            self.default_kits = [str(k) for k in raw["defaultKits"]]
        if isinstance(raw.get("docker"), bool):
            self.docker = raw["docker"]
        if isinstance(raw.get("workspaceTrusted"), bool):
            self.workspace_trusted = raw["workspaceTrusted"]
        for key, attr in (("approvalTimeout", "approval_timeout"), ("debounceMs", "debounce_ms")):
            if isinstance(raw.get(key), int | float) and raw[key] >= 0:
                setattr(self, attr, float(raw[key]))


class SandkitServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(
            "sandkit", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental
        )
        self.settings = Settings()
        # Diagnostics come from two sources per document; each replaces only its own.
        self.diagnostics: dict[str, dict[str, list[types.Diagnostic]]] = {}

    def publish(self, uri: str, source: str, diagnostics: list[types.Diagnostic]) -> None:
        per_source = self.diagnostics.setdefault(uri, {})
        per_source[source] = diagnostics
        merged = [d for items in per_source.values() for d in items]
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=merged)
        )


def make_server() -> SandkitServer:
    from sandkit.lsp import kitdocs, sandboxes

    server = SandkitServer()

    @server.feature(types.INITIALIZE)
    def initialize(ls: SandkitServer, params: types.InitializeParams) -> None:
        ls.settings.update(params.initialization_options)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def configuration(ls: SandkitServer, params: types.DidChangeConfigurationParams) -> None:
        ls.settings.update(params.settings)

    kitdocs.register(server)
    sandboxes.register(server)
    return server


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
    logging.getLogger("pygls").setLevel(logging.WARNING)  # it logs every message at INFO
    server = make_server()
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        server.start_tcp(host or "127.0.0.1", int(port))
    else:
        server.start_io()
    return 0
