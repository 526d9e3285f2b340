"""The broker-free commands, run in process: what a rule author sees."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from conftest import DEFAULT_PACK_DIR, header, write_pack

from streams import cli

MESSAGE = {"message_id": "1", "group_id": "g", "sender_id": "u", "sent_at": 0, "text": "兼职刷单日结"}


def messages(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_bytes(orjson.dumps(MESSAGE) + b"\n")
    return path


def test_classify_takes_a_pack_without_a_sanctions_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack = write_pack(tmp_path / "pack", {"scam": header("scam") + "rule task\n  刷单\n"})
    assert cli.main(["classify", "--rules", str(pack), str(messages(tmp_path))]) == 0
    verdict = orjson.loads(capsys.readouterr().out)
    assert verdict["decision"] == "block"


def test_classify_refuses_a_pack_whose_sanctions_file_the_worker_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(DEFAULT_PACK_DIR, pack)
    sanctions = pack / "sanctions.toml"
    sanctions.write_text(sanctions.read_text().replace('"weapons.firearms" = 3', '"weapons.no-such-rule" = 3'))
    assert cli.main(["classify", "--rules", str(pack), str(messages(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert "sanctions.toml" in err
    assert "weapons.no-such-rule" in err
