"""A v3 workload kit with a Dockerfile runs in a real microVM: its RUN and COPY steps are
replayed as install steps, its ENV reaches the agent, its ENTRYPOINT/CMD is the agent's
command, and `--prompt` appends the kit's agent-sessions@1 prompt verb. One sandbox for
the module."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.vm.conftest import Env

SPEC = """\
schemaVersion: "3"
kind: workload
capabilities:
  - type: com.docker.sandbox/sbx@1
  - type: com.docker.sandbox/agent-sessions@1
    config:
      prompt: ["--prompt", "{{.Prompt}}"]
"""
# The script is written by a RUN (as root, with a build arg in its environment), the note
# and a folder's contents are COPYs, and the agent runs the script with the CMD's argument.
DOCKERFILE = """\
# syntax=docker/dockerfile:1
FROM docker/sandbox-templates:shell
ARG GREETING=hello
USER root
RUN printf '#!/bin/sh\\necho "%s from $KIT_FLAVOUR as $(id -un) (args: $*)"\\ncat /opt/kit/note.txt /opt/kit/lib/sub/deep.txt\\n' \\
      "$GREETING" > /usr/local/bin/kit-agent \\
 && chmod 0755 /usr/local/bin/kit-agent
COPY --chmod=0644 note.txt /opt/kit/
COPY lib /opt/kit/lib
ENV KIT_FLAVOUR=v3
USER agent
WORKDIR /home/agent/workspace
ENTRYPOINT ["/usr/local/bin/kit-agent"]
CMD ["--default"]
"""


@dataclass
class Workload:
    env: Env
    kit: Path
    workspace: Path
    first: subprocess.CompletedProcess[str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.env.sk("run", str(self.kit), str(self.workspace), "--name", "v3wl", *args)


@pytest.fixture(scope="module")
def workload(env: Env, tmp_path_factory: pytest.TempPathFactory) -> Workload:
    kit = tmp_path_factory.mktemp("v3kit") / "kit-agent"
    kit.mkdir()
    (kit / "spec.yaml").write_text(SPEC)
    (kit / "kit-agent.dockerfile").write_text(DOCKERFILE)
    (kit / "note.txt").write_text("note from COPY\n")
    (kit / "lib" / "sub").mkdir(parents=True)  # a folder's COPY: its contents
    (kit / "lib" / "sub" / "deep.txt").write_text("deep from a folder's COPY\n")
    workspace = tmp_path_factory.mktemp("v3ws")
    w = Workload(env, kit, workspace, subprocess.CompletedProcess([], 0))
    w.first = w.run("--memory", "512m")
    return w


def test_run_launches_the_dockerfiles_entrypoint(workload: Workload) -> None:
    done = workload.first
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-3:] == [
        "hello from v3 as agent (args: --default)",
        "note from COPY",
        "deep from a folder's COPY",
    ]


def test_the_prompt_verb_appends_to_the_launch_command(workload: Workload) -> None:
    done = workload.run("--prompt", "hi")
    assert done.returncode == 0, done.stderr
    assert "hello from v3 as agent (args: --default --prompt hi)" in done.stdout


def test_an_undeclared_verb_is_a_clear_error(workload: Workload) -> None:
    done = workload.run("--resume", "s-1")
    assert done.returncode != 0
    assert "kit 'kit-agent' declares no 'resume' session verb" in done.stderr
    assert "Traceback" not in done.stderr
