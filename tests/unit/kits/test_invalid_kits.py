"""Each invalid kit reports exactly these errors: line, column (1-based) and message."""

from __future__ import annotations

import pytest

from sandkit.kits import KitError, load_kit
from sandkit.kits.issues import Severity
from tests.conftest import WriteKit

V2 = 'schemaVersion: "2"\nkind: mixin\nname: demo\n'
SANDBOX = 'schemaVersion: "2"\nkind: sandbox\nname: demo\nsandbox:\n  image: x\n'
V1 = 'schemaVersion: "1"\nkind: mixin\nname: demo\n'
V3 = 'schemaVersion: "3"\nkind: mixin\n'

CASES: list[tuple[str, str, list[str]]] = [
    (
        "misspelled-top-key",
        V2 + "permisions:\n  network:\n    allow: [a.com]\n",
        ["4:1: unknown key 'permisions' (did you mean 'permissions'?)"],
    ),
    (
        "misspelled-nested-key",
        V2 + "permissions:\n  network:\n    alow: [a.com]\n",
        ["6:5: unknown key 'alow' (did you mean 'allow'?)"],
    ),
    (
        "v1-key-in-v2",
        V2 + "network:\n  allowedDomains: [a.com]\n",
        [
            "4:1: unknown key 'network': in schemaVersion 2 network rules go under 'permissions.network'"
        ],
    ),
    (
        "install-as-map",
        V2 + "setup:\n  install:\n    command: make\n",
        ["5:3: expected a list, got a mapping"],
    ),
    (
        "no-schema-version",
        "kind: mixin\nname: demo\n",
        ["1:1: missing schemaVersion: add 'schemaVersion: \"2\"' as the first line"],
    ),
    (
        "unknown-schema-version",
        'schemaVersion: "4"\nkind: mixin\nname: demo\n',
        ['1:16: schemaVersion must be "1", "2" or "3", got \'4\''],
    ),
    (
        "bad-kind",
        'schemaVersion: "2"\nkind: agentt\nname: demo\n',
        ["2:7: must be one of: sandbox, mixin; got 'agentt'"],
    ),
    (
        "bad-name",
        'schemaVersion: "2"\nkind: mixin\nname: My_Kit\n',
        [
            "3:7: kit name 'My_Kit' must be lowercase letters, digits and hyphens, start and end with a letter or digit, at most 64 characters"
        ],
    ),
    ("missing-name", 'schemaVersion: "2"\nkind: mixin\n', ["1:1: missing required key 'name'"]),
    (
        "sandbox-without-block",
        'schemaVersion: "2"\nkind: sandbox\nname: demo\n',
        [
            "2:1: a sandbox kit needs a 'sandbox:' block (with 'image' and usually 'entrypoint'), or 'extends: AGENT' to build on a built-in one"
        ],
    ),
    (
        "mixin-with-sandbox",
        V2 + "sandbox:\n  image: x\n",
        ["4:1: 'sandbox' belongs to sandbox kits; a mixin cannot have it"],
    ),
    (
        "sandbox-without-image",
        'schemaVersion: "2"\nkind: sandbox\nname: demo\nsandbox:\n  entrypoint: [bash]\n',
        ["4:1: missing required key 'image' (or use 'extends: AGENT')"],
    ),
    (
        "bare-star-rule",
        V2 + "permissions:\n  network:\n    allow: ['*']\n",
        ["6:13: '*' is not a rule: write '**' to allow every host"],
    ),
    (
        "url-rule",
        V2 + "permissions:\n  network:\n    deny:\n      - https://a.com/x\n",
        ["7:9: 'https://a.com/x' looks like a URL: write only the host, e.g. 'example.com'"],
    ),
    (
        "port-out-of-range",
        V2 + "permissions:\n  network:\n    allow: [a.com:70000]\n",
        ["6:13: 'a.com:70000': ports must be between 1 and 65535, low to high"],
    ),
    (
        "wildcard-in-middle",
        V2 + "permissions:\n  network:\n    allow: [api.*.a.com]\n",
        [
            "6:13: 'api.*.a.com': a wildcard may only be the whole first label ('*.example.com' or '**.example.com')"
        ],
    ),
    (
        "format-without-placeholder",
        V2
        + "credentials:\n  - service: x\n    apiKey:\n      inject:\n        - {domain: a.com, header: Authorization, format: Bearer}\n",
        [
            "8:58: format 'Bearer' must contain exactly one %s where the secret goes, e.g. \"Bearer %s\""
        ],
    ),
    (
        "format-and-scheme",
        V2
        + "credentials:\n  - service: x\n    apiKey:\n      inject:\n        - {domain: a.com, format: '%s', scheme: bearer}\n",
        ["8:11: give 'format' or 'scheme', not both"],
    ),
    (
        "basic-without-username",
        V2
        + "credentials:\n  - service: x\n    apiKey:\n      inject:\n        - domain: a.com\n          scheme: basic\n",
        ["8:11: scheme 'basic' needs a 'username'"],
    ),
    (
        "duplicate-service",
        V2
        + "credentials:\n  - service: x\n    apiKey: {name: A}\n  - service: x\n    apiKey: {name: B}\n",
        ["7:14: credential service 'x' is declared twice in this kit"],
    ),
    (
        "bad-env-name",
        V2 + "environment:\n  variables:\n    1BAD: x\n",
        [
            "6:5: '1BAD' is not a valid environment variable name (letters, digits, _; not starting with a digit)"
        ],
    ),
    (
        "reserved-env-prefix",
        V2 + "environment:\n  variables:\n    SBX_MODE: x\n",
        [
            "6:5: 'SBX_MODE' uses a reserved prefix (DASH_, SBX_, DOCKER_, SANDKIT_); choose another name"
        ],
    ),
    (
        "reserved-env",
        V2 + "environment:\n  variables:\n    SBX_MODE: x\n",
        [
            "6:5: 'SBX_MODE' uses a reserved prefix (DASH_, SBX_, DOCKER_, SANDKIT_); choose another name"
        ],
    ),
    ("empty-startup", V2 + "setup:\n  startup:\n    - command: []\n", ["6:16: must not be empty"]),
    (
        "startup-as-string",
        V2 + "setup:\n  startup:\n    - command: echo hi\n",
        ["6:16: expected a list, got 'echo hi'"],
    ),
    (
        "relative-file-path",
        V2 + "setup:\n  files:\n    - path: etc/motd\n",
        ["6:13: path 'etc/motd' must be absolute (start with '/')"],
    ),
    (
        "bad-mode",
        V2 + "setup:\n  files:\n    - path: /etc/motd\n      mode: '0999'\n",
        ['7:13: mode \'0999\' must be octal like "0644" or "0755" (quote it)'],
    ),
    (
        "install-without-command",
        V2 + "setup:\n  install:\n    - user: '0'\n",
        ["6:7: missing required key 'command'"],
    ),
    (
        "undeclared-arg",
        V2 + "permissions:\n  network:\n    allow: ['${{ kit.args.host }}']\n",
        [
            "6:13: '${{ kit.args.host }}' refers to arg 'host', which the kit does not declare under 'args'"
        ],
    ),
    (
        "arg-default-and-required",
        V2 + "args:\n  host:\n    default: a\n    required: true\n",
        ["5:3: an arg needs exactly one of 'default: VALUE' or 'required: true'"],
    ),
    (
        "arg-default-not-in-enum",
        V2 + "args:\n  tier:\n    default: gold\n    enum: [free, pro]\n",
        ["5:3: value 'gold' is not one of: free, pro"],
    ),
    (
        "port-zero",
        V2 + "ports:\n  - container: 0\n",
        ["5:16: must be at least 1, got the number 0"],
    ),
    (
        "bad-volume-size",
        V2 + "volumes:\n  - path: /data\n    size: lots\n",
        ['6:11: size \'lots\' must be a number with an optional unit, like "512m", "8g" or "2GiB"'],
    ),
    (
        "unclosed-bracket",
        V2 + "permissions:\n  network:\n    allow: [a.com\n",
        ["7:1: invalid YAML: expected ',' or ']', but got '<stream end>'"],
    ),
    ("duplicate-key", V2 + "name: again\n", ["4:1: duplicate key 'name'"]),
    (
        "tab-indent",
        V2 + "setup:\n\tinstall: []\n",
        ["5:1: invalid YAML: found character '\\t' that cannot start any token"],
    ),
    (
        "not-a-mapping",
        "- schemaVersion: '2'\n",
        [
            "1:1: a kit spec is a YAML mapping that starts with schemaVersion, e.g. 'schemaVersion: \"2\"'"
        ],
    ),
    (
        "requires-on-sandbox",
        SANDBOX + "requires:\n  agent: claude\n",
        ["6:1: 'requires' belongs to mixins; a sandbox kit cannot have it"],
    ),
    (
        "negative-cpu",
        'schemaVersion: "2"\nkind: sandbox\nname: demo\nsandbox:\n  image: x\n  resources:\n    cpu: -1\n',
        ["7:10: must be at least 0, got the number -1"],
    ),
    (
        "credential-without-auth",
        V2 + "credentials:\n  - service: x\n",
        ["5:5: credential 'x' needs an 'apiKey' or 'oauth' block"],
    ),
    (
        "bad-locked-path",
        V2 + "locked: [Permissions.network]\n",
        ["4:10: 'Permissions.network' is not a dotted key path like 'permissions.network'"],
    ),
    (
        "v3-unknown-required-capability",
        V3 + "capabilities:\n  - type: com.docker.sandbox/usb-device@1\n",
        [
            "4:11: capability 'com.docker.sandbox/usb-device@1' is not supported by sandkit; mark it 'optional: true' to run without it"
        ],
    ),
    (
        "v3-config-typo",
        V3
        + "capabilities:\n  - type: com.docker.sandbox/network-policy@1\n    config:\n      runtme:\n        allow: [a.com]\n",
        ["6:7: unknown key 'runtme' (did you mean 'runtime'?)"],
    ),
    (
        "v3-set",
        'schemaVersion: "3"\nkind: set\n',
        [
            "2:7: kind 'set' bundles kits published as OCI images, which sandkit cannot fetch: pass each kit with --kit instead"
        ],
    ),
    (
        "v3-malformed-type",
        V3 + "capabilities:\n  - type: network-policy\n",
        ["4:5: capability type 'network-policy' must look like 'com.docker.sandbox/NAME@N'"],
    ),
    (
        "v3-two-lifecycles",
        V3
        + "capabilities:\n  - type: com.docker.sandbox/lifecycle@1\n  - type: com.docker.sandbox/lifecycle@1\n",
        ["5:11: capability 'lifecycle' may appear only once (first at capabilities[0])"],
    ),
    (
        "v1-allowed-and-denied",
        V1 + "network:\n  allowedDomains: [a.com]\n  deniedDomains: [a.com]\n",
        ["6:19: 'a.com' is both allowed and denied; remove it from one list"],
    ),
    (
        "v1-value-format",
        V1
        + "network:\n  serviceDomains: {a.com: svc}\n  serviceAuth:\n    svc: {headerName: X-Key, valueFormat: token}\n",
        [
            "7:43: format 'token' must contain exactly one %s where the secret goes, e.g. \"Bearer %s\""
        ],
    ),
    (
        "v1-service-without-header",
        V1 + "network:\n  allowedDomains: [a.com]\n  serviceDomains: {a.com: custom}\n",
        [
            "6:20: service 'custom' has no header to inject: add network.serviceAuth.custom.headerName"
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [pytest.param(t, e, id=i) for i, t, e in CASES])
def test_invalid_kit_reports_exact_errors(
    write_kit: WriteKit, text: str, expected: list[str]
) -> None:
    root = write_kit(text)
    with pytest.raises(KitError) as caught:
        load_kit(root)
    spec = str(root / "spec.yaml")
    errors = [i for i in caught.value.issues if i.severity is Severity.ERROR]
    assert all(i.file == spec for i in errors)
    got = [f"{i.span.line + 1}:{i.span.column + 1}: {i.message}" for i in errors]
    assert got == expected


def test_there_are_at_least_thirty_cases() -> None:
    assert len({c[0] for c in CASES}) == len(CASES) >= 30
