"""`classify` on a long file: a progress bar on standard error while it is a terminal, and a summary at the end."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import orjson

CLI = [sys.executable, "-m", "streams"]
SUMMARY = re.compile(r"classified ([\d,]+) messages in [\d.]+ s \(([\d,]+) msgs/s\): (.*)")


def messages(path: Path, count: int) -> Path:
    texts = ["今晚一起吃饭吗", "兼职刷单日结", "加我微信看看"]
    lines = (
        orjson.dumps({"message_id": f"m{n}", "group_id": "g", "sender_id": "u", "sent_at": n, "text": texts[n % 3]})
        for n in range(count)
    )
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_classify_ends_with_a_summary_on_stderr_and_no_bar_when_stderr_is_not_a_terminal(tmp_path: Path):
    source = messages(tmp_path / "in.jsonl", 3000)
    result = subprocess.run([*CLI, "classify", str(source)], capture_output=True, text=True, timeout=120, check=True)
    verdicts = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(verdicts) == 3000
    decisions = {d: sum(v["decision"] == d for v in verdicts) for d in ("allow", "review", "block")}
    [line] = result.stderr.splitlines()
    summary = SUMMARY.fullmatch(line)
    assert summary, line
    assert summary[1] == "3,000"
    assert int(summary[2].replace(",", "")) > 0
    assert summary[3] == ", ".join(f"{n:,} {d}" for d, n in decisions.items())


def test_classify_counts_invalid_lines_in_its_summary(tmp_path: Path):
    source = messages(tmp_path / "in.jsonl", 2)
    source.write_bytes(source.read_bytes() + b"{oops\n")
    result = subprocess.run([*CLI, "classify", str(source)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].endswith("; 1 invalid lines skipped")


def test_classify_draws_a_progress_bar_on_a_terminal(tmp_path: Path):
    source = messages(tmp_path / "in.jsonl", 30_000)
    controller, terminal = pty.openpty()
    with (tmp_path / "out.jsonl").open("wb") as out:
        classify = subprocess.Popen([*CLI, "classify", str(source)], stdout=out, stderr=terminal)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal's other end is closed: the process is done with it
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert classify.wait(timeout=120) == 0
    text = shown.decode()
    assert "classify" in text
    assert "━" in text  # the bar
    assert re.search(r"[\d,]+ messages, [\d,]+ msgs/s", text)
    assert SUMMARY.search(text)
    assert len((tmp_path / "out.jsonl").read_bytes().splitlines()) == 30_000
