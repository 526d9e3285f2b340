"""parse_message: valid chat messages, and every dead-letter reason."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.records import (
    DEAD_LETTER_REASONS,
    INVALID_FIELD,
    INVALID_JSON,
    INVALID_UTF8,
    MAX_ID_CHARS,
    MAX_MESSAGE_BYTES,
    MAX_TEXT_BYTES,
    MISSING_FIELD,
    NOT_AN_OBJECT,
    TOO_LARGE,
    ChatMessage,
    InvalidMessage,
    parse_fields,
    parse_message,
)

BASE: dict[str, Any] = {
    "message_id": "m1",
    "group_id": "g1",
    "sender_id": "u1",
    "sent_at": 1795300000000,
    "text": "hello 你好",
}
# 2026-11-22T01:30:00Z
EPOCH_MS = 1795311000000


def raw(doc: object) -> bytes:
    return orjson.dumps(doc)


def refused(value: bytes | None) -> InvalidMessage:
    with pytest.raises(InvalidMessage) as excinfo:
        parse_message(value)
    assert excinfo.value.reason in DEAD_LETTER_REASONS
    return excinfo.value


# --- valid ------------------------------------------------------------------------------------------------------


def test_minimal_message_with_epoch_ms() -> None:
    assert parse_message(raw(BASE)) == ChatMessage(
        message_id="m1",
        group_id="g1",
        sender_id="u1",
        sent_at_ms=1795300000000,
        text="hello 你好",
    )


def test_full_message() -> None:
    doc = BASE | {
        "links": ["https://example.com/a", "www.example.org"],
        "mentions": ["u2", "u3"],
        "reply_to": "m0",
        "client": "ios",
        "unknown_extra_field": {"ignored": True},
    }
    assert parse_message(raw(doc)) == ChatMessage(
        message_id="m1",
        group_id="g1",
        sender_id="u1",
        sent_at_ms=1795300000000,
        text="hello 你好",
        links=("https://example.com/a", "www.example.org"),
        mentions=("u2", "u3"),
        reply_to="m0",
        client="ios",
    )


def test_optional_fields_may_be_null() -> None:
    doc = BASE | {"links": None, "mentions": None, "reply_to": None, "client": None}
    message = parse_message(raw(doc))
    assert (message.links, message.mentions, message.reply_to, message.client) == ((), (), None, None)


@pytest.mark.parametrize(
    ("sent_at", "expected_ms"),
    [
        pytest.param("2026-11-22T09:30:00+08:00", EPOCH_MS, id="offset"),
        pytest.param("2026-11-22T01:30:00Z", EPOCH_MS, id="z"),
        pytest.param("2026-11-22T01:30:00z", EPOCH_MS, id="lower-case-z"),  # RFC 3339 5.6 allows it
        pytest.param("2026-11-22t01:30:00Z", EPOCH_MS, id="lower-case-t"),
        pytest.param("2026-11-21T20:30:00-05:00", EPOCH_MS, id="negative-offset"),
        pytest.param("2026-11-22T01:30:00.123Z", EPOCH_MS + 123, id="fraction"),
        pytest.param("2026-11-22T01:30:00.123456+00:00", EPOCH_MS + 123, id="microseconds"),
        pytest.param(0, 0, id="epoch-zero"),
        pytest.param(EPOCH_MS, EPOCH_MS, id="epoch-ms"),
        pytest.param(2**53 - 1, 2**53 - 1, id="largest-epoch-ms"),
        pytest.param("1970-01-01T00:00:00Z", 0, id="rfc-3339-epoch"),
        pytest.param("1970-01-01T08:00:00.001+08:00", 1, id="rfc-3339-just-after-epoch"),
    ],
)
def test_sent_at_forms(sent_at: object, expected_ms: int) -> None:
    assert parse_message(raw(BASE | {"sent_at": sent_at})).sent_at_ms == expected_ms


def test_text_may_be_empty() -> None:
    assert parse_message(raw(BASE | {"text": ""})).text == ""


def test_text_of_20000_chinese_characters_is_accepted() -> None:
    text = "长" * 20_000  # 60,000 bytes of UTF-8
    assert len(text.encode()) == 60_000
    assert parse_message(raw(BASE | {"text": text})).text == text


def test_text_of_exactly_64_kib_is_accepted() -> None:
    text = "a" * MAX_TEXT_BYTES
    assert parse_message(raw(BASE | {"text": text})).text == text


def test_value_just_under_256_kib_is_accepted() -> None:
    doc = BASE | {"mentions": ["x" * 500] * 500}
    value = raw(doc)
    assert 250_000 < len(value) <= MAX_MESSAGE_BYTES
    assert parse_message(value).mentions == ("x" * 500,) * 500


def test_value_under_256_kib_with_big_text_is_accepted() -> None:
    doc = BASE | {"text": "a" * 60_000, "mentions": ["x" * 100] * 400}
    value = raw(doc)
    assert len(value) < MAX_MESSAGE_BYTES
    message = parse_message(value)
    assert len(message.text) == 60_000
    assert len(message.mentions) == 400


# --- dead letters -----------------------------------------------------------------------------------------------


def test_reasons_are_a_closed_set() -> None:
    assert DEAD_LETTER_REASONS == (
        "invalid_utf8",
        "invalid_json",
        "not_an_object",
        "missing_field",
        "invalid_field",
        "too_large",
        "invalid_event",
    )


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"\xff\xfe{}", id="bom-like-bytes"),
        pytest.param(b'{"message_id": "m1", "text": "\xe9t\xe9"}', id="latin-1-inside-a-string"),
        pytest.param(b'{"text": "\xe4\xbd"}', id="truncated-utf8"),
    ],
)
def test_invalid_utf8(value: bytes) -> None:
    assert refused(value).reason == INVALID_UTF8


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="tombstone"),
        pytest.param(b"", id="empty"),
        pytest.param(b"{not json", id="broken"),
        pytest.param(b'{"text": "hi",}', id="trailing-comma"),
        pytest.param(b'{"text": "\\ud800"}', id="lone-surrogate"),
        pytest.param(b"NaN", id="nan"),
    ],
)
def test_invalid_json(value: bytes | None) -> None:
    assert refused(value).reason == INVALID_JSON


@pytest.mark.parametrize(
    "value",
    [b"[1,2]", b'"a string"', b"42", b"null", b"true"],
)
def test_not_an_object(value: bytes) -> None:
    assert refused(value).reason == NOT_AN_OBJECT


@pytest.mark.parametrize("field", ["message_id", "group_id", "sender_id", "sent_at", "text"])
def test_missing_field(field: str) -> None:
    error = refused(raw({k: v for k, v in BASE.items() if k != field}))
    assert error.reason == MISSING_FIELD
    assert error.detail.startswith(f"{field}:")


@pytest.mark.parametrize("field", ["message_id", "group_id", "sender_id", "sent_at", "text"])
def test_null_required_field_is_invalid_not_missing(field: str) -> None:
    error = refused(raw(BASE | {field: None}))
    assert error.reason == INVALID_FIELD
    assert error.detail.startswith(f"{field}:")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("message_id", "", id="empty-message-id"),
        pytest.param("group_id", 7, id="group-id-number"),
        pytest.param("sender_id", ["u1"], id="sender-id-list"),
        pytest.param("sender_id", "u" * 129, id="sender-id-too-long"),
        pytest.param("text", 5, id="text-number"),
        pytest.param("text", {"body": "hi"}, id="text-object"),
        pytest.param("sent_at", True, id="sent-at-bool"),
        pytest.param("sent_at", 1.5, id="sent-at-float"),
        pytest.param("sent_at", -1, id="sent-at-negative"),
        pytest.param("sent_at", 2**53, id="sent-at-too-big"),
        pytest.param("sent_at", "1969-12-31T23:59:59.999Z", id="sent-at-rfc-3339-before-1970"),
        pytest.param("sent_at", "1970-01-01T07:59:59+08:00", id="sent-at-rfc-3339-before-1970-by-its-offset"),
        pytest.param("sent_at", "0001-01-01T00:00:00Z", id="sent-at-year-one"),
        pytest.param("sent_at", "2026-11-22T09:30:00", id="sent-at-without-timezone"),
        pytest.param("sent_at", "2026-11-22 09:30:00+08:00", id="sent-at-space-separator"),
        pytest.param("sent_at", "2026-11-22", id="sent-at-date-only"),
        pytest.param("sent_at", "yesterday", id="sent-at-words"),
        pytest.param("sent_at", "2026-02-30T00:00:00Z", id="sent-at-impossible-date"),
        pytest.param("sent_at", {"ms": 1}, id="sent-at-object"),
        pytest.param("links", "https://example.com", id="links-a-string"),
        pytest.param("links", ["https://example.com", 1], id="links-not-all-strings"),
        pytest.param("links", {"a": "b"}, id="links-an-object"),
        pytest.param("mentions", [None], id="mentions-null-item"),
        pytest.param("mentions", ["u"] * 501, id="mentions-too-many"),
        pytest.param("reply_to", 3, id="reply-to-number"),
        pytest.param("client", ["ios"], id="client-list"),
    ],
)
def test_invalid_field(field: str, value: object) -> None:
    error = refused(raw(BASE | {field: value}))
    assert error.reason == INVALID_FIELD
    assert error.detail.startswith(f"{field}:")


@pytest.mark.parametrize(
    "sent_at",
    [
        # The schema's pattern: ^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$
        pytest.param("20261122T013000Z", id="basic-format"),
        pytest.param("2026-11-22T01:30Z", id="no-seconds"),
        pytest.param("2026-11-22T01:30:00+0800", id="offset-without-colon"),
        pytest.param("2026-11-22T01:30:00+08", id="offset-hours-only"),
        pytest.param("2026-W47-7T01:30:00Z", id="iso-week-date"),
        pytest.param("2026-11-22T01:30:00,5Z", id="comma-fraction"),
    ],
)
def test_sent_at_that_is_iso_8601_but_not_rfc_3339(sent_at: str) -> None:
    error = refused(raw(BASE | {"sent_at": sent_at}))
    assert error.reason == INVALID_FIELD
    assert error.detail.startswith("sent_at:")


def test_text_of_22000_chinese_characters_is_too_large() -> None:
    text = "长" * 22_000  # 66,000 bytes, under the 256 KiB value limit
    error = refused(raw(BASE | {"text": text}))
    assert error.reason == TOO_LARGE
    assert error.detail == f"text is 66000 bytes, over {MAX_TEXT_BYTES}"


def test_text_one_byte_over_64_kib_is_too_large() -> None:
    assert refused(raw(BASE | {"text": "a" * (MAX_TEXT_BYTES + 1)})).reason == TOO_LARGE


def test_text_limit_counts_utf8_bytes_of_emoji() -> None:
    assert parse_message(raw(BASE | {"text": "😀" * 16_384})).text == "😀" * 16_384  # 65,536 bytes
    assert refused(raw(BASE | {"text": "😀" * 16_385})).reason == TOO_LARGE


def test_whole_value_over_256_kib_is_too_large() -> None:
    value = raw(BASE | {"mentions": ["x" * 100] * 2700})
    assert len(value) > MAX_MESSAGE_BYTES
    error = refused(value)
    assert error.reason == TOO_LARGE
    assert error.detail == f"value is {len(value)} bytes, over {MAX_MESSAGE_BYTES}"


def test_oversized_value_is_refused_before_parsing() -> None:
    # Not even JSON: the size check comes first.
    assert refused(b"x" * (MAX_MESSAGE_BYTES + 1)).reason == TOO_LARGE
    assert refused(b"\xff" * (MAX_MESSAGE_BYTES + 1)).reason == TOO_LARGE


def test_invalid_message_carries_reason_and_detail() -> None:
    error = refused(b"[1,2]")
    assert str(error) == "not_an_object: value is a JSON list, not an object"
    assert error.detail == "value is a JSON list, not an object"
    assert isinstance(error, ValueError)


# --- the common case's shortcut ---------------------------------------------------------------------------------

_ids = st.one_of(
    st.text(max_size=3),
    st.text(min_size=MAX_ID_CHARS - 1, max_size=MAX_ID_CHARS + 1),
    st.none(),
    st.integers(-9, 9),
    st.booleans(),
    st.lists(st.text(max_size=2), max_size=2),
)
_sent_at = st.one_of(
    st.sampled_from([-1, 0, 1, (1 << 53) - 1, 1 << 53]),
    st.sampled_from(["2026-11-22T01:30:00Z", "2026-11-22 01:30:00", "", "1795300000000"]),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
)
_texts = st.one_of(
    st.text(max_size=10),
    st.sampled_from(["a" * MAX_TEXT_BYTES, "a" * (MAX_TEXT_BYTES + 1), "你" * (MAX_TEXT_BYTES // 3 + 1)]),
    st.none(),
    st.integers(-9, 9),
)
_optional = st.one_of(st.none(), st.text(max_size=3), st.lists(st.text(max_size=3), max_size=2), st.integers(-9, 9))
_CHANGES = {
    "message_id": _ids,
    "group_id": _ids,
    "sender_id": _ids,
    "sent_at": _sent_at,
    "text": _texts,
    "links": _optional,
    "mentions": _optional,
    "reply_to": _optional,
    "client": _optional,
    "extra": _optional,
}


@st.composite
def _docs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid message with a few of its fields changed or dropped, so that every check is reached."""
    doc = dict(BASE)
    for name, values in _CHANGES.items():
        how = draw(st.sampled_from(("keep",) * 5 + ("change", "drop")))
        if how == "change":
            doc[name] = draw(values)
        elif how == "drop":
            doc.pop(name, None)
    return doc


def _outcome(parse: Any, arg: object) -> object:
    try:
        return parse(arg)
    except InvalidMessage as error:
        return error.reason, error.detail


_DROPPED = object()
_ID_EDGES = ["", "m", "x" * MAX_ID_CHARS, "x" * (MAX_ID_CHARS + 1), None, 5, True, ["m"], _DROPPED]
_OPTIONAL_EDGES = [None, [], ["x"], "x", [1], 5, _DROPPED]
_EDGES = {
    "message_id": _ID_EDGES,
    "group_id": _ID_EDGES,
    "sender_id": _ID_EDGES,
    "sent_at": [
        -1,
        0,
        (1 << 53) - 1,
        1 << 53,
        True,
        1.5,
        "2026-11-22T01:30:00Z",
        "1969-12-31T23:59:59Z",
        "2026-11-22 01:30",
        None,
        _DROPPED,
    ],
    "text": [
        "",
        "a" * MAX_TEXT_BYTES,
        "a" * (MAX_TEXT_BYTES + 1),
        "你" * (MAX_TEXT_BYTES // 3),
        "你" * (MAX_TEXT_BYTES // 3 + 1),
        None,
        5,
        _DROPPED,
    ],
    "links": _OPTIONAL_EDGES,
    "mentions": _OPTIONAL_EDGES,
    "reply_to": _OPTIONAL_EDGES,
    "client": _OPTIONAL_EDGES,
    "extra": _OPTIONAL_EDGES,
}


@pytest.mark.parametrize(("name", "value"), [(name, value) for name, values in _EDGES.items() for value in values])
def test_parse_message_decides_each_edge_as_the_field_by_field_checks_do(name: str, value: object) -> None:
    doc = dict(BASE)
    if value is _DROPPED:
        doc.pop(name, None)
    else:
        doc[name] = value
    assert _outcome(parse_message, raw(doc)) == _outcome(parse_fields, doc)


@settings(max_examples=1000, deadline=None)
@given(_docs())
def test_parse_message_decides_as_the_field_by_field_checks_do(doc: dict[str, Any]) -> None:  # edges combined
    assert _outcome(parse_message, raw(doc)) == _outcome(parse_fields, doc)
