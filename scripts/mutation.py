"""Mutation testing of sandkit's security cores, with mutmut, against the fast tests.

Each run copies the package, the tests and the built-in kits into a fresh folder laid out
the way mutmut expects (``src/sandkit``), mutates the modules below, runs the tests that
reach each mutated function, and prints per module how many mutants the tests killed, then
every surviving mutant as a diff. A survivor is either killed by a new test or listed in
ALLOWED with the reason it cannot be killed (an equivalent mutant: the code means the same).

Exit status: 0 when every module reaches TARGET, 1 otherwise (2: the run itself failed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = 0.90


@dataclass(frozen=True)
class Module:
    path: str  # under server/sandkit/
    functions: tuple[str, ...] = ()  # only these (Class.method or function); () = all

    @property
    def dotted(self) -> str:
        return "sandkit." + self.path.removesuffix(".py").replace("/", ".")

    def patterns(self) -> list[str]:
        if not self.functions:
            return [f"{self.dotted}.*"]
        return [f"{self.dotted}.{_mangle(f)}__mutmut_*" for f in self.functions]


# The security cores (issue 22). Only the guard of the sync engine and the pure parts of
# safefs are mutated: the rest of those modules is I/O, tested through real trees.
MODULES = (
    Module("kits/composition.py"),
    Module("kits/hostrules.py"),
    Module("sync/plan.py"),
    Module("sync/protect.py"),
    Module("sync/safefs.py", ("split", "clean_mode", "SafeTree.link_stays_inside")),
    Module(
        "sync/engine.py",
        (
            "SyncEngine._release",
            "SyncEngine._hold_burst",
            "SyncEngine._destructive",
            "SyncEngine._held_path",
            "SyncEngine._approved_path",
            "SyncEngine._runs_on_host",
        ),
    ),
    Module("vm/qemu.py"),
    Module("net/policy.py"),
    Module("net/inject.py"),
    Module("net/guard.py"),
)

# The fast tests (never tests/vm): mutmut runs, for each mutant, those that reach its
# function, fastest first, stopping at the first failure.
TESTS = (
    "tests/unit/kits",
    "tests/unit/net",
    "tests/unit/sync",
    "tests/unit/vm",
    "tests/integration/test_sync_guard.py",
    "tests/integration/test_proxy.py",
    "tests/integration/test_proxy_rules.py",
    "tests/security/test_kit_files.py",
    "tests/security/test_proxy_access.py",
    "tests/security/test_proxy_injection.py",
    "tests/security/test_proxy_matching.py",
    "tests/security/test_safefs.py",
)

# Survivors that no test can kill, because the mutant means the same as the code:
# (module, function, the line as the mutant has it) -> why.
_NO_X = "the text is lower-cased first: there is no 'X' to strip"
_DEAD = "unreachable: two folders are the same entry, so _same(h, s) has answered already"
_STAMP = "the stamp in the trial name is a placeholder: any stamp gives the same answer"
ALLOWED: dict[tuple[str, str, str], str] = {
    ("kits/hostrules.py", "HostRule.matches", 'host = host.lower().rstrip("XX.XX")'): _NO_X,
    (
        "kits/hostrules.py",
        "HostRule.matches",
        'address = ipaddress.ip_address(host.strip("XX[]XX"))',
    ): _NO_X,
    ("kits/hostrules.py", "parse_rule", 'lowered = host.lower().rstrip("XX.XX")'): _NO_X,
    (
        "kits/hostrules.py",
        "_network",
        "return ipaddress.ip_network(candidate, strict=None)",
    ): "None is false, like False",
    (
        "kits/hostrules.py",
        "_split_port",
        "if close <= 0:",
    ): "raw starts with '[': ']' is never at 0",
    ("kits/hostrules.py", "_split_port", "if close < 1:"): "raw starts with '[': ']' is never at 0",
    (
        "kits/hostrules.py",
        "_split_port",
        "return raw[: close + 2], None",
    ): "']' is the last character here: a slice past the end is the same",
    ("sync/plan.py", "_decide", "return [Action(None, path, h)]"): _DEAD,
    ("sync/plan.py", "_decide", "return [Action(Op.RECORD, None, h)]"): _DEAD,
    ("sync/plan.py", "_decide", "return [Action(Op.RECORD, path, None)]"): _DEAD,
    ("sync/plan.py", "_decide", "return [Action(path, h)]"): _DEAD,
    ("sync/plan.py", "_decide", "return [Action(Op.RECORD, h)]"): _DEAD,
    ("sync/plan.py", "_decide", "return [Action(Op.RECORD, path, )]"): _DEAD,
    (
        "sync/plan.py",
        "conflict_name",
        "return posixpath.join(head, name) if (head) or True else name",
    ): "posixpath.join('', name) is name",
    (
        "sync/protect.py",
        "git_config_change_is_safe",
        'if key in changed and key.endswith(("url", "XXpushurlXX")):',
    ): "'pushurl' ends with 'url', which is checked already",
    (
        "sync/protect.py",
        "git_config_change_is_safe",
        'if key in changed and key.endswith(("url", "PUSHURL")):',
    ): "'pushurl' ends with 'url', which is checked already",
    (
        "sync/protect.py",
        "git_config_change_is_safe",
        "bare = value.strip('\"').upper()",
    ): "'::' and a leading '-' have no case",
    (
        "sync/safefs.py",
        "SafeTree.link_stays_inside",
        "st = self.lstat(here) if (here != rel) or True else None",
    ): "st is not looked at when here == rel",
    (
        "sync/engine.py",
        "SyncEngine._approved_path",
        "return bool(self._approved) or (",
    ): "with nothing approved the test in brackets is false anyway",
    (
        "sync/engine.py",
        "SyncEngine._approved_path",
        "rel in self._approved or any(p not in self._approved for p in parents(rel))",
    ): "every path below a held folder is held, so approved, by its own name too",
    (
        "sync/engine.py",
        "SyncEngine._runs_on_host",
        "return self.protected(rel) or self.protected(conflict_name(rel, None))",
    ): _STAMP,
    (
        "sync/engine.py",
        "SyncEngine._runs_on_host",
        'return self.protected(rel) or self.protected(conflict_name(rel, "XXxXX"))',
    ): _STAMP,
    (
        "sync/engine.py",
        "SyncEngine._runs_on_host",
        'return self.protected(rel) or self.protected(conflict_name(rel, "X"))',
    ): _STAMP,
}
_SAME_COPY = (
    "when both are readwrite the mutant keeps a copy of the first with the same mode: "
    "equal in every field"
)
ALLOWED |= {
    (
        "kits/composition.py",
        "_skill_dirs",
        f'if d.mode == "readwrite" and first.mode != "{mode}":',
    ): _SAME_COPY
    for mode in ("XXreadwriteXX", "READWRITE")
}
_ANY_PHASE = "approvals and the baseline are rules for every phase: the phase is not looked at"
_LAST = "injected headers are appended last: after the first of them there is nothing else"
ALLOWED |= {
    ("net/policy.py", "Policy.decide", "if c.request_matches(method, judged, deny=None):"): (
        "None is false, like False"
    ),
    (
        "net/policy.py",
        "Policy.decide",
        "for c in self._approved: / if c.applies(host, port, None, address):",
    ): _ANY_PHASE,
    (
        "net/policy.py",
        "Policy.decide",
        "for c in self._baseline: / if c.applies(host, port, None, address):",
    ): _ANY_PHASE,
    (
        "net/inject.py",
        "Injector.__init__",
        'self._by_host.setdefault(inject.domain.lower().rstrip("XX.XX"), []).append((b, inject))',
    ): _NO_X,
    (
        "net/inject.py",
        "Injector.intercepts",
        'return host.lower().rstrip("XX.XX") in self._by_host',
    ): _NO_X,
    ("net/inject.py", "Injector.apply", 'host = host.lower().rstrip("XX.XX")'): _NO_X,
    ("net/inject.py", "Injector.apply", "named.add(None)"): (
        "an injected header holds the real value, never a placeholder, so it is never "
        "warned about either way"
    ),
    ("net/inject.py", "Injector.apply", "if k.upper() in named:"): (
        "an injected header holds the real value, never a placeholder, so it is never "
        "warned about either way"
    ),
    ("net/inject.py", "Injector.apply", "if k.lower() in named: / break"): _LAST,
    ("net/guard.py", "Resolver.resolve", 'host = host.lower().strip("XX[]XX")'): _NO_X,
    ("net/guard.py", "Resolver.resolve", "return [ipaddress.ip_address(None)]"): (
        "getaddrinfo answers an address literal with that address"
    ),
    (
        "net/guard.py",
        "Resolver.resolve",
        "infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)",
    ): "the port does not change the addresses a name has",
    (
        "net/guard.py",
        "Resolver.resolve",
        "infos = await asyncio.get_running_loop().getaddrinfo(host, port, )",
    ): "other socket types repeat the same addresses, and duplicates are dropped",
}
_DIGEST = "whether the digest is read does not change whether something is there"
for _needed in ("None", "", "True"):
    _line = f"for rel in [r for r in self.deferred if self.share.entry(r, {_needed}) is not None]:"
    ALLOWED["sync/engine.py", "SyncEngine._release", _line] = _DIGEST
ALLOWED |= {
    (
        "sync/engine.py",
        "SyncEngine._release",
        "or (tracked_bytes >= 0 and lost * 2 > tracked_bytes)  # or most of its bytes",
    ): "with no bytes tracked, none can be lost",
    (
        "sync/engine.py",
        "SyncEngine._release",
        'stored = self._to_trash(rel, stamp, "deleted in the sandbox", keep=None)',
    ): "None is false, like False",
    (
        "sync/engine.py",
        "SyncEngine._release",
        'rel, stamp, "overwritten by the sandbox", keep=None',
    ): "the host's file moved, not copied, to the trash, then overwritten: the end state "
    "differs only if the copy then fails, a race between two file operations no test can arrange",
}

KILLED = {"killed", "timeout", "caught by type check", "segfault"}
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped"}
STATUS |= {36: "timeout", 37: "caught by type check", -24: "timeout", 24: "timeout"}
STATUS |= {152: "timeout", 255: "timeout", -11: "segfault", -9: "segfault"}


def _mangle(function: str) -> str:
    """mutmut's name for a function: x_name, or xǁClassǁmethod."""
    cls, _, name = function.rpartition(".")
    return f"xǁ{cls}ǁ{name}" if cls else f"x_{name}"


def _unmangle(key: str) -> str:
    name = key.rpartition(".")[2].partition("__mutmut_")[0]
    if name.startswith("xǁ"):
        _, cls, method = name.split("ǁ")
        return f"{cls}.{method}"
    return name.removeprefix("x_")


def stage(root: Path, modules: tuple[Module, ...]) -> None:
    """The package, tests and kits where mutmut looks for them, with its settings."""
    skip = shutil.ignore_patterns("__pycache__", ".hypothesis", ".pytest_cache", "*.pyc")
    shutil.copytree(REPO / "server" / "sandkit", root / "src" / "sandkit", ignore=skip)
    shutil.copytree(REPO / "tests", root / "tests", ignore=skip)
    shutil.copytree(REPO / "kits", root / "kits", ignore=skip)
    tests = [t for t in TESTS if (REPO / t).exists()]
    for missing in sorted(set(TESTS) - set(tests)):
        print(f"warning: {missing} does not exist; not run", file=sys.stderr)
    pytest_ini = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]
    ini = pytest_ini["ini_options"]
    lines = [
        "[tool.pytest.ini_options]",
        f"asyncio_mode = {json.dumps(ini['asyncio_mode'])}",
        f"asyncio_default_fixture_loop_scope = {json.dumps(ini['asyncio_default_fixture_loop_scope'])}",
        f"asyncio_default_test_loop_scope = {json.dumps(ini['asyncio_default_test_loop_scope'])}",
        f"timeout = {ini['timeout']}",
        'addopts = "-p no:cacheprovider --strict-markers"',
        f"filterwarnings = {json.dumps(ini['filterwarnings'])}",
        f"markers = {json.dumps(ini['markers'])}",
        "",
        "[tool.mutmut]",
        'source_paths = ["src"]',
        f"only_mutate = {json.dumps(['src/sandkit/' + m.path for m in modules])}",
        'also_copy = ["kits"]',
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}",
        "use_git_change_detection = false",
        "",
    ]
    (root / "pyproject.toml").write_text("\n".join(lines))


@dataclass
class Result:
    module: Module
    statuses: Counter[str]
    survivors: list[tuple[str, str, str]]  # (key, function, diff)
    allowed: list[tuple[str, tuple[str, str, str]]]  # (mutant, the ALLOWED entry it matched)

    @property
    def killed(self) -> int:
        return sum(n for s, n in self.statuses.items() if s in KILLED)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())  # the allowed are not counted in statuses

    @property
    def score(self) -> float:
        return self.killed / self.total if self.total else 1.0


def allow_keys(module: str, function: str, diff: str) -> list[tuple[str, str, str]]:
    """The allow-list keys a mutant may be listed under: the line(s) as the mutant has
    them, alone or after the line just above the change (where the same line is written
    twice in one function)."""
    lines = diff.splitlines()[2:]
    mutated = " / ".join(line[1:].strip() for line in lines if line.startswith("+"))
    first = next((i for i, line in enumerate(lines) if line[:1] in "+-"), 0)
    above = next((line[1:].strip() for line in reversed(lines[:first]) if line[:1] == " "), "")
    return [(module, function, mutated), (module, function, f"{above} / {mutated}")]


def collect(root: Path, modules: tuple[Module, ...]) -> list[Result]:
    sys.path.insert(0, str(root))
    os.chdir(root)
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    results = []
    for module in modules:
        meta = root / "mutants" / "src" / "sandkit" / (module.path + ".meta")
        codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        wanted = set(module.functions)
        result = Result(module, Counter(), [], [])
        for key, code in sorted(codes.items(), key=lambda kv: _natural(kv[0])):
            function = _unmangle(key)
            if wanted and function not in wanted:
                continue
            status = "not checked" if code is None else STATUS.get(code, "suspicious")
            if status in KILLED:
                result.statuses[status] += 1
                continue
            diff = get_diff_for_mutant(key, path=Path("src/sandkit") / module.path)
            entry = next((k for k in allow_keys(module.path, function, diff) if k in ALLOWED), None)
            if entry is not None:
                result.allowed.append((key, entry))
                continue
            result.statuses[status] += 1
            result.survivors.append((key, status, diff))
        results.append(result)
    return results


def _changed(diff: str) -> list[str]:
    """The removed and added lines of a diff, without its file header."""
    return [line for line in diff.splitlines()[2:] if line[:1] in "+-"]


def _natural(key: str) -> tuple[str, int]:
    head, _, n = key.rpartition("__mutmut_")
    return head, int(n) if n.isdigit() else 0


def report(results: list[Result], seconds: float) -> bool:
    ok = True
    print()
    print(
        f"{'module':<24} {'mutants':>8} {'killed':>7} {'survived':>9} {'allowed':>8} {'score':>7}"
    )
    for r in results:
        passed = r.score >= TARGET
        ok &= passed
        print(
            f"{r.module.path:<24} {r.total + len(r.allowed):>8} {r.killed:>7} "
            f"{r.total - r.killed:>9} {len(r.allowed):>8} {r.score:>6.1%}"
            f"{'' if passed else '  < ' + format(TARGET, '.0%')}"
        )
    print(f"(score = killed / (mutants - allowed); {seconds / 60:.1f} min)")
    survivors = [s for r in results for s in r.survivors]
    if survivors:
        print(f"\n{len(survivors)} surviving mutant(s):")
        for key, status, diff in survivors:
            print(f"\n# {key} ({status})")
            print("\n".join(_changed(diff)))
    ran = {r.module.path for r in results}
    used = {entry for r in results for _, entry in r.allowed}
    unused = sorted(e for e in ALLOWED if e[0] in ran and e not in used)
    if unused:
        print("\nallow-list entries that matched no survivor (killed now, or the code changed):")
        for entry in unused:
            print(f"  {entry}")
    return ok


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that the workers are stopped and the work folder removed


def main() -> int:
    signal.signal(signal.SIGTERM, _stop)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="only these (e.g. sync/plan.py)")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (mutmut show …)")
    args = parser.parse_args()
    modules = tuple(m for m in MODULES if not args.modules or m.path in args.modules)
    if not modules:
        parser.error(f"no such module; choose from {', '.join(m.path for m in MODULES)}")
    root = Path(tempfile.mkdtemp(prefix="sandkit-mutation-"))
    started = time.monotonic()
    try:
        stage(root, modules)
        log = root / "mutmut.log"
        patterns = [p for m in modules for p in m.patterns()]
        print(f"mutmut: {len(modules)} module(s) in {root} (log: {log.name})", flush=True)
        with log.open("w") as out:
            # Its own session, so that an interrupted run stops its workers too.
            run = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "mutmut"),
                    "run",
                    "--max-children",
                    str(args.jobs),
                    *patterns,
                ],
                cwd=root,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                run.wait()
            except BaseException:
                os.killpg(run.pid, signal.SIGTERM)
                run.wait()
                raise
        if run.returncode != 0:
            print(log.read_text()[-6000:])
            print(f"mutmut failed (exit {run.returncode})", file=sys.stderr)
            return 2
        ok = report(collect(root, modules), time.monotonic() - started)
    finally:
        if args.keep:
            print(f"\nkept {root}")
        else:
            os.chdir(REPO)
            shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
