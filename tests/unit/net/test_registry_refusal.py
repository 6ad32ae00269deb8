"""A refused CONNECT's reason phrase (answers.refusal_phrase): Docker, like every Go
client, shows a failed CONNECT's status text and never its body, so the phrase says why."""

from __future__ import annotations

from sandkit.net.answers import MAX_PHRASE, message, refusal_phrase


def test_phrase_is_the_body_first_lines_on_one_line() -> None:
    body = "Blocked: registry.test:5000\nReason: no rule allows it.\nTo allow it: a kit.\nDo not retry.\n"
    assert refusal_phrase(403, body) == (
        "Forbidden (Blocked: registry.test:5000 Reason: no rule allows it. To allow it: a kit.)"
    )


def test_phrase_cannot_break_the_status_line() -> None:
    phrase = refusal_phrase(403, "Blocked: b\u00e4d.test\r\nX-Injected: yes\x00\t\n")
    assert phrase == "Forbidden (Blocked: b?d.test X-Injected: yes?)"
    assert all(" " <= c <= "~" for c in phrase)
    head = message(403, "x", reason=refusal_phrase(403, "y" * 5000)).split(b"\r\n", 1)[0]
    assert head == b"HTTP/1.1 403 Forbidden (" + b"y" * MAX_PHRASE + b")"


def test_empty_body_keeps_the_standard_phrase() -> None:
    assert refusal_phrase(403, "\n \n") == "Forbidden"
    assert message(403, "").startswith(b"HTTP/1.1 403 Forbidden\r\n")
