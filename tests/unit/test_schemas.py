"""The published JSON Schemas say what the worker does: same accept/refuse, and real verdicts conform."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
import pytest

from streams.policy.reload import load_classifier
from streams.records import InvalidMessage, parse_message

ROOT = Path(__file__).resolve().parents[2]
MESSAGE_SCHEMA = json.loads((ROOT / "schemas" / "chat-message.v1.json").read_text())
VERDICT_SCHEMA = json.loads((ROOT / "schemas" / "verdict.v1.json").read_text())

BASE = {"message_id": "m1", "group_id": "g1", "sender_id": "u1", "sent_at": 1795300000000, "text": "hi"}
CASES = [
    BASE,
    BASE | {"sent_at": "2026-11-22T09:30:00+08:00"},
    BASE | {"sent_at": "2026-11-22T01:30:00.123Z"},
    BASE | {"sent_at": "2026-11-22T01:30:00.123456-05:00"},
    BASE | {"links": ["https://example.com"], "mentions": ["u2"], "reply_to": "m0", "client": "ios"},
    BASE | {"reply_to": None, "client": None},
    BASE | {"text": "长" * 21845},  # 65,535 bytes
    BASE | {"text": "长" * 21846},  # 65,538 bytes
    BASE | {"sent_at": "2026-11-22T09:30:00"},  # no offset
    BASE | {"sent_at": "2026-11-22 09:30:00+08:00"},
    BASE | {"sent_at": "yesterday"},
    BASE | {"sent_at": True},
    BASE | {"sent_at": -1},
    BASE | {"sent_at": "1969-12-31T23:59:59Z"},  # before 1970 in either form is refused
    BASE | {"sent_at": "1900-01-01T00:00:00+08:00"},
    BASE | {"sent_at": "1970-01-01T00:00:00Z"},
    BASE | {"text": None},
    BASE | {"sent_at": None},
    BASE | {"message_id": ""},
    BASE | {"group_id": 7},
    BASE | {"sender_id": "u" * 129},
    BASE | {"text": 5},
    BASE | {"links": "https://example.com"},
    BASE | {"links": [1]},
    BASE | {"mentions": ["u"] * 501},
    BASE | {"reply_to": 3},
    {k: v for k, v in BASE.items() if k != "text"},
    {k: v for k, v in BASE.items() if k != "sent_at"},
    {k: v for k, v in BASE.items() if k != "message_id"},
]


def _schema_accepts(doc: dict[str, object]) -> bool:
    validator = jsonschema.Draft202012Validator(MESSAGE_SCHEMA, format_checker=jsonschema.FormatChecker())
    errors = list(validator.iter_errors(doc))
    text = doc.get("text")
    fits = not isinstance(text, str) or len(text.encode()) <= 64 * 1024  # byte length is beyond JSON Schema
    return not errors and fits


def _worker_accepts(doc: dict[str, object]) -> bool:
    try:
        parse_message(orjson.dumps(doc))
    except InvalidMessage:
        return False
    return True


@pytest.mark.parametrize("doc", CASES, ids=range(len(CASES)))
def test_schema_and_worker_agree(doc):
    assert _schema_accepts(doc) == _worker_accepts(doc)


def test_both_accept_and_refuse_something():
    results = {_worker_accepts(doc) for doc in CASES}
    assert results == {True, False}


def test_verdicts_conform_to_the_verdict_schema():
    classifier = load_classifier(ROOT / "rules")
    texts = [
        "今晚一起吃饭吗",
        "刷*單*返*利 加V: abc12345 138-0013-8000",
        "身份证 11010519491231002X",
        "bet365点com 澳门赌场",
        "领取红包 http://hongbao.example/",  # a blocklisted link in the text, and one attached (no span)
    ]
    links = ["https://a.example/x", "https://spin-win.example/"]
    messages = [
        parse_message(orjson.dumps(BASE | {"message_id": f"m{i}", "text": t, "links": links[: 1 + (i == 4)]}))
        for i, t in enumerate(texts)
    ]
    verdicts = classifier.classify_batch(messages, 1795300000123)
    validator = jsonschema.Draft202012Validator(VERDICT_SCHEMA)
    for verdict in verdicts:
        validator.validate(orjson.loads(orjson.dumps(verdict)))
    assert {v["decision"] for v in verdicts} == {"allow", "block"}
    listed = [m for m in verdicts[4]["matches"] if m["rule_id"] == "scam.blocked-domain"]
    assert [m["span"] is None for m in listed] == [False, True]
