"""The language server's own messages, beyond LSP (the VS Code client mirrors this module).

Commands (``workspace/executeCommand``; one argument, an object, unless noted):

    sandkit.openWorkspace  {folder, agent?, kits?, kitArgs?, name?, default?, memory?,
                            resolve?, upstreamCa?}          -> {name, state, created}
                           Agent and kits default to the folder's .sandkit.yaml, then to
                           the client's settings; progress is reported with $/progress.
    sandkit.runAgent       {name, rows?, cols?}           -> {terminal}   (streams, see below)
    sandkit.exec           {name, argv, user?, cwd?, env?, pty?, rows?, cols?, stream?}
                           -> {terminal} when stream, else {code, stdout, stderr}
    sandkit.stop           {name}                          -> {}
    sandkit.remove         {name}                          -> {}
    sandkit.list           {}                              -> [{name, state, agent, kits,
                                                               workspace, sync}]
    sandkit.showNetworkLog {name, limit?}                  -> [decision records]
    sandkit.validateKit    {uri}                           -> {valid, issues: [...]}
    sandkit.newKit         {folder, name, kind?}          -> {uri} (made with applyEdit)
    sandkit.undo           {name, paths? | last?}          -> {restored: [...]}

Terminals (an agent or exec streamed to the editor):

    server -> client  sandkit/terminalOutput  {terminal, data}      data: UTF-8 text
    server -> client  sandkit/terminalExit    {terminal, code}       code: int (128+N: signal)
    client -> server  sandkit/terminalInput   {terminal, data, eof?}
    client -> server  sandkit/terminalResize  {terminal, rows, cols}
    client -> server  sandkit/terminalClose   {terminal}   (the program gets SIGHUP)

Network decisions (live, for a log view):

    server -> client  sandkit/decision        {sandbox, record}
"""

from __future__ import annotations

OPEN_WORKSPACE = "sandkit.openWorkspace"
RUN_AGENT = "sandkit.runAgent"
EXEC = "sandkit.exec"
STOP = "sandkit.stop"
REMOVE = "sandkit.remove"
LIST = "sandkit.list"
SHOW_NETWORK_LOG = "sandkit.showNetworkLog"
VALIDATE_KIT = "sandkit.validateKit"
NEW_KIT = "sandkit.newKit"
UNDO = "sandkit.undo"

TERMINAL_OUTPUT = "sandkit/terminalOutput"
TERMINAL_EXIT = "sandkit/terminalExit"
TERMINAL_INPUT = "sandkit/terminalInput"
TERMINAL_RESIZE = "sandkit/terminalResize"
TERMINAL_CLOSE = "sandkit/terminalClose"
DECISION = "sandkit/decision"

# Answers offered when a request waits for approval (window/showMessageRequest).
ALLOW_ONCE = "Allow once"
ALLOW_SANDBOX = "Allow for this sandbox"
ADD_TO_KIT = "Add to kit"
DENY = "Deny"
# … and when a burst of deletions in the sandbox is held by the sync guard.
PUT_BACK = "Put them back"
DELETE_TOO = "Delete on the host too"
APPLY_ON_HOST = "Apply on the host"  # held changes to files the host runs

WORKSPACE_FILE = ".sandkit.yaml"  # per-folder defaults: agent, kits, kitArgs, default
