"""The commands' input as a user gets it wrong: a missing file, a folder, a closed pipe, invalid lines and repeated
ids. Each is one line on stderr and an exit code, never a traceback; nothing is dropped without a word."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from conftest import DEFAULT_PACK_DIR

CLI = [sys.executable, "-m", "streams"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def message(n: int, **fields: object) -> bytes:
    doc = {"message_id": f"m{n}", "group_id": "g1", "sender_id": f"u{n}", "sent_at": 1_795_300_000_000 + n}
    return orjson.dumps(doc | {"text": "兼职刷单日结"} | fields)


COMMANDS = {
    "validate": ["validate"],
    "classify": ["classify"],
    "diff": ["diff", "--candidate", str(DEFAULT_PACK_DIR)],
    "replay": ["replay", "--output-prefix", "never-written."],
    "produce": ["produce", "--bootstrap-servers", "localhost:1"],  # the file is read before any connection
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
@pytest.mark.parametrize(("name", "why"), [("nope.jsonl", "No such file or directory"), ("folder", "Is a directory")])
def test_a_file_that_cannot_be_read_is_one_line_and_exit_2(tmp_path: Path, command: list[str], name: str, why: str):
    (tmp_path / "folder").mkdir()
    result = run(*command, name, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"groupwarden: {name}: {why}\n"
    assert result.stdout == ""


def test_a_missing_group_events_file_is_one_line(tmp_path: Path):
    (tmp_path / "in.jsonl").write_bytes(message(1) + b"\n")
    result = run(*COMMANDS["diff"], "in.jsonl", "--group-events", "events.jsonl", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (2, "groupwarden: events.jsonl: No such file or directory\n")


def test_classify_into_a_pipe_closed_early_stops_without_a_traceback(tmp_path: Path):
    source = tmp_path / "big.jsonl"
    source.write_bytes(b"\n".join(message(n) for n in range(20_000)) + b"\n")  # verdicts far over a pipe's buffer
    with subprocess.Popen(
        [*CLI, "classify", str(source)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path
    ) as classify:
        assert classify.stdout is not None
        assert classify.stderr is not None
        assert orjson.loads(classify.stdout.readline())["message_id"] == "m0"
        classify.stdout.close()  # as `| head -1` does
        err = classify.stderr.read().decode()
        assert classify.wait(timeout=120) == 1
    assert "Traceback" not in err
    assert "BrokenPipeError" not in err


def test_diff_names_and_counts_the_invalid_lines_and_repeated_ids_it_skips(tmp_path: Path):
    lines = [
        message(1),
        message(2, text="今晚一起吃饭吗"),
        b"{not json",
        message(1, text="a later message with the same id"),
        message(3, text=None),
        b"[1, 2]",
    ]
    (tmp_path / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    result = run(*COMMANDS["diff"], "in.jsonl", "--json", "-", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    first, *rest = result.stderr.splitlines()
    assert first.startswith("in.jsonl:3: invalid_json: ")
    assert rest == [
        "in.jsonl:4: duplicate_message_id: 'm1' is also at in.jsonl:1",
        "in.jsonl:5: invalid_field: text: must be a string",
        "in.jsonl:6: not_an_object: value is a JSON list, not an object",
        "6 records, 4 skipped (1 invalid_json, 1 duplicate_message_id, 1 invalid_field, 1 not_an_object)",
    ]
    report = orjson.loads(result.stdout)
    assert report["messages"] == 2
    assert report["skipped"] == {"invalid_json": 1, "duplicate_message_id": 1, "invalid_field": 1, "not_an_object": 1}


def test_diff_of_clean_input_says_nothing_on_stderr(tmp_path: Path):
    (tmp_path / "in.jsonl").write_bytes(message(1) + b"\n" + message(2) + b"\n")
    result = run(*COMMANDS["diff"], "in.jsonl", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert "0 of 2 messages affected" in result.stdout


def test_diff_names_the_first_problems_and_counts_them_all(tmp_path: Path):
    (tmp_path / "in.jsonl").write_bytes(b"{}\n" * 50 + message(1) + b"\n")
    result = run(*COMMANDS["diff"], "in.jsonl", cwd=tmp_path)
    assert result.returncode == 1
    *named, summary = result.stderr.splitlines()
    assert len(named) == 20
    assert summary == (
        "51 records, 50 skipped (50 missing_field); 30 not shown: `groupwarden validate` lists every problem"
    )
