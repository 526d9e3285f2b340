"""`groupwarden validate`: a producer learns what is wrong with each line before publishing it."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from streams.cli import main

GOOD = {"message_id": "m1", "group_id": "g1", "sender_id": "u1", "sent_at": "2026-11-22T09:30:00+08:00", "text": "hi"}


def line(**changes: object) -> bytes:
    return orjson.dumps({k: v for k, v in (GOOD | changes).items() if v is not None})


def validate(tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: list[bytes]) -> tuple[int, list[str], str]:
    path = tmp_path / "messages.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    return code, [row.removeprefix(f"{path}:") for row in out.splitlines()], err


def test_a_clean_file_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, rows, err = validate(tmp_path, capsys, [line(), line(message_id="m2", links=["https://a.example/"])])
    assert (code, rows) == (0, [])
    assert "2 messages, 0 problems" in err


def test_each_kind_of_problem_is_reported_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [
        line(),  # 1: fine
        b"\xff\xfe not utf-8",  # 2
        b"{oops",  # 3
        b"[1, 2]",  # 4
        line(message_id="m4", sender_id=None),  # 5
        line(message_id="m5", sent_at="yesterday"),  # 6
        line(message_id="m6", text="长" * 30000),  # 7: 90,000 bytes of UTF-8, over 64 KiB
        b"",  # 8: blank lines are skipped, but keep their number
        line(),  # 9: m1 again
    ]
    code, rows, err = validate(tmp_path, capsys, lines)
    assert code == 1
    assert [row.split(": ")[0:2] for row in rows] == [
        ["2", "invalid_utf8"],
        ["3", "invalid_json"],
        ["4", "not_an_object"],
        ["5", "missing_field"],
        ["6", "invalid_field"],
        ["7", "too_large"],
        ["9", "duplicate_message_id"],
    ]
    assert "sender_id" in rows[3]
    assert "sent_at" in rows[4]
    assert "also on line 1" in rows[6]
    assert "8 messages, 7 problems" in err
