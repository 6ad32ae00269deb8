"""A kit's .dockerignore read as Docker reads a build context's (moby's patternmatcher)."""

from __future__ import annotations

import pytest

from sandkit.kits.dockerignore import DockerIgnoreError, parse

PATHS = [
    "README.md",
    "docs/guide.md",
    "docs/img/a.png",
    "secret.env",
    "scripts/run.sh",
    "scripts/test/t.sh",
    "node_modules/x/index.js",
    "a?b",
    "tmp1",
    "tmpx",
]


@pytest.mark.parametrize(
    ("text", "left_out"),
    [
        ("", set()),
        ("# a comment\n\n", set()),
        ("*.md", {"README.md"}),  # no slash: the top level only, unlike .gitignore
        ("**/*.md", {"README.md", "docs/guide.md"}),
        ("docs", {"docs/guide.md", "docs/img/a.png"}),  # a folder: all below it
        ("docs/", {"docs/guide.md", "docs/img/a.png"}),
        ("/docs/img", {"docs/img/a.png"}),  # a leading slash changes nothing
        ("./secret.env", {"secret.env"}),
        ("*/*.sh", {"scripts/run.sh"}),  # '*' stays within one part
        ("scripts/**", {"scripts/run.sh", "scripts/test/t.sh"}),
        ("**/t.sh", {"scripts/test/t.sh"}),
        ("node_modules\n!node_modules/x/index.js", set()),  # the last match decides
        ("*\n!scripts", {p for p in PATHS if not p.startswith("scripts/")}),
        ("scripts\n!scripts/run.sh\nscripts/run.*", {"scripts/run.sh", "scripts/test/t.sh"}),
        ("tmp?", {"tmp1", "tmpx"}),
        ("tmp[0-9]", {"tmp1"}),
        ("tmp[^0-9]", {"tmpx"}),
        ("tmp[!0-9]", {"tmpx"}),
        ("a\\?b", {"a?b"}),  # an escaped '?' is itself
        ("docs/*", {"docs/guide.md", "docs/img/a.png"}),  # docs/img matches: all below
    ],
)
def test_patterns_leave_out_what_docker_leaves_out(text: str, left_out: set[str]) -> None:
    ignore = parse(text)
    assert {p for p in PATHS if ignore(p)} == left_out


def test_a_pattern_that_is_not_one_names_its_line() -> None:
    with pytest.raises(DockerIgnoreError) as caught:
        parse("# fine\n*.md\ntmp[z-a]\n")
    assert caught.value.line == 3 and "'tmp[z-a]' is not a pattern" in str(caught.value)
