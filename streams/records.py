"""Wire schemas: the chat message producers publish and its validation (schemas/chat-message.v1.json says the same)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

import orjson

MAX_TEXT_BYTES = 64 * 1024
MAX_MESSAGE_BYTES = 256 * 1024  # the whole JSON value; larger values are refused before parsing
MAX_ID_CHARS = 128
MAX_LIST_ITEMS = 500

# Dead-letter reasons: a closed set, so they can label metrics.
INVALID_UTF8 = "invalid_utf8"
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"
MISSING_FIELD = "missing_field"
INVALID_FIELD = "invalid_field"
TOO_LARGE = "too_large"
INVALID_EVENT = "invalid_event"  # a group event, command or violation the standing tables cannot apply
DEAD_LETTER_REASONS = (
    INVALID_UTF8,
    INVALID_JSON,
    NOT_AN_OBJECT,
    MISSING_FIELD,
    INVALID_FIELD,
    TOO_LARGE,
    INVALID_EVENT,
)


class SourceRecord(Protocol):
    """Where a consumed record came from: aiokafka's ConsumerRecord and Faust's Message both fit."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class InvalidMessage(ValueError):
    """A message that cannot be moderated; ``reason`` is one of DEAD_LETTER_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ChatMessage(NamedTuple):  # a tuple: built for every message, at a third of a frozen dataclass's cost
    message_id: str
    group_id: str
    sender_id: str
    sent_at_ms: int
    text: str
    links: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    reply_to: str | None = None
    client: str | None = None


# RFC 3339 date-time, as the schema's pattern says: ISO 8601 allows much more (weeks, basic format, +0800).
_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)


_REQUIRED = ("message_id", "group_id", "sender_id", "sent_at", "text")
_EPOCH_MS_LIMIT = 1 << 53  # what a JSON number holds exactly
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_sent_at(value: object) -> int:
    """Epoch milliseconds from an RFC 3339 string with an offset, or from epoch milliseconds. Either form must fall
    in the same range: from 1970-01-01T00:00:00Z (0) to what a JSON number holds exactly."""
    if isinstance(value, int) and not isinstance(value, bool):
        at_ms = value
    elif isinstance(value, str):
        at_ms = _rfc3339_ms(value)
    else:
        raise InvalidMessage(INVALID_FIELD, "sent_at: must be an RFC 3339 string or epoch milliseconds")
    if not 0 <= at_ms < _EPOCH_MS_LIMIT:
        raise InvalidMessage(INVALID_FIELD, "sent_at: before 1970-01-01T00:00:00Z or out of range")
    return at_ms


def _rfc3339_ms(value: str) -> int:
    m = _RFC3339.fullmatch(value)
    if m:
        date, hour_minute, second, fraction, offset = m.groups()
        second = min(second, "59")  # a leap second counts as the second before it
        micros = (fraction or "").ljust(6, "0")[:6]
        offset = "+00:00" if offset in ("Z", "z") else offset
        try:
            parsed = datetime.fromisoformat(f"{date}T{hour_minute}:{second}.{micros}{offset}")
        except ValueError:
            pass
        else:
            return (parsed - _EPOCH) // timedelta(milliseconds=1)
    raise InvalidMessage(INVALID_FIELD, "sent_at: not an RFC 3339 date-time with an offset")


def _id(doc: dict[str, Any], name: str) -> str:
    if name not in doc:
        raise InvalidMessage(MISSING_FIELD, f"{name}: required")
    value = doc[name]
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise InvalidMessage(INVALID_FIELD, f"{name}: must be a string of 1 to {MAX_ID_CHARS} characters")
    return value


def _strings(doc: dict[str, Any], name: str) -> tuple[str, ...]:
    value = doc.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_LIST_ITEMS or not all(isinstance(v, str) for v in value):
        raise InvalidMessage(INVALID_FIELD, f"{name}: must be a list of at most {MAX_LIST_ITEMS} strings")
    return tuple(value)


def _optional_string(doc: dict[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidMessage(INVALID_FIELD, f"{name}: must be a string")
    return value


def parse_message(raw: bytes | None) -> ChatMessage:
    """Decode and validate one ``chat.messages.v1`` value, or raise InvalidMessage."""
    if raw is None:
        raise InvalidMessage(INVALID_JSON, "empty value (a tombstone)")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidMessage(TOO_LARGE, f"value is {len(raw)} bytes, over {MAX_MESSAGE_BYTES}")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode()
        except UnicodeDecodeError as utf:
            raise InvalidMessage(INVALID_UTF8, f"byte {utf.start}: {utf.reason}") from None
        raise InvalidMessage(INVALID_JSON, str(exc)) from None
    if not isinstance(doc, dict):
        raise InvalidMessage(NOT_AN_OBJECT, f"value is a JSON {type(doc).__name__}, not an object")
    message_id, group_id, sender_id = doc.get("message_id"), doc.get("group_id"), doc.get("sender_id")
    text, sent_at = doc.get("text"), doc.get("sent_at")
    if not (  # the common case, checked in one expression: half the time of the checks field by field
        type(message_id) is str
        and 0 < len(message_id) <= MAX_ID_CHARS
        and type(group_id) is str
        and 0 < len(group_id) <= MAX_ID_CHARS
        and type(sender_id) is str
        and 0 < len(sender_id) <= MAX_ID_CHARS
        and type(text) is str
        and len(text) * 4 <= MAX_TEXT_BYTES
        and type(sent_at) is int
        and 0 <= sent_at < _EPOCH_MS_LIMIT
    ):
        return parse_fields(doc)  # an RFC 3339 sent_at, a long text, or an error to name
    if len(doc) == len(_REQUIRED):
        return ChatMessage(message_id, group_id, sender_id, sent_at, text)
    return ChatMessage(message_id, group_id, sender_id, sent_at, text, *_optional_fields(doc))


def parse_fields(doc: dict[str, Any]) -> ChatMessage:
    """Validate a decoded message field by field, raising InvalidMessage with the first reason found."""
    # A field given as null is there but wrong: invalid_field, as any other value of the wrong type.
    if "text" not in doc:
        raise InvalidMessage(MISSING_FIELD, "text: required")
    text = doc["text"]
    if not isinstance(text, str):
        raise InvalidMessage(INVALID_FIELD, "text: must be a string")
    if len(text) * 4 > MAX_TEXT_BYTES and len(text.encode()) > MAX_TEXT_BYTES:
        raise InvalidMessage(TOO_LARGE, f"text is {len(text.encode())} bytes, over {MAX_TEXT_BYTES}")
    if "sent_at" not in doc:
        raise InvalidMessage(MISSING_FIELD, "sent_at: required")
    return ChatMessage(
        _id(doc, "message_id"),
        _id(doc, "group_id"),
        _id(doc, "sender_id"),
        parse_sent_at(doc["sent_at"]),
        text,
        *_optional_fields(doc),
    )


def _optional_fields(doc: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...], str | None, str | None]:
    """links, mentions, reply_to and client, in ChatMessage's order, validated."""
    return (
        _strings(doc, "links"),
        _strings(doc, "mentions"),
        _optional_string(doc, "reply_to"),
        _optional_string(doc, "client"),
    )
