"""The pipeline on a real broker: a verdict per message, dead letters for bad input, any client and codec."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import confluent_kafka
import orjson
import pytest

from streams.kafka.produce import partition_for
from streams.topics import DEADLETTER, MESSAGES, VERDICTS, VIOLATIONS
from tests.integration.conftest import chat_message, produce, read_until, scrape


def _ids(records):
    return [orjson.loads(r.value)["message_id"] for r in records]


async def test_every_message_gets_exactly_one_verdict(settings, start_worker):
    texts = ["今晚一起吃饭吗", "刷*單*返*利，日赚五百", "see you at the airsoft club", "澳门在线赌场 bet365点com"]
    messages = [chat_message(n, texts[n % len(texts)]) for n in range(3000)]
    await produce(settings, messages)
    worker = start_worker()

    verdicts = await read_until(settings, VERDICTS, until=lambda seen: len(seen) >= 3000)
    await asyncio.sleep(2)  # anything extra (a duplicate) would arrive now
    verdicts = await read_until(settings, VERDICTS, until=lambda seen: len(seen) >= 3000, wait_seconds=10)

    assert sorted(_ids(verdicts)) == sorted(f"m{n}" for n in range(3000))
    for record in verdicts:
        verdict = orjson.loads(record.value)
        assert record.key == verdict["group_id"].encode()
        assert record.partition == partition_for(record.key, settings.partitions)
        assert "text" not in verdict
    decisions = {orjson.loads(r.value)["message_id"]: orjson.loads(r.value)["decision"] for r in verdicts}
    assert decisions["m0"] == "allow"
    assert decisions["m1"] == "block"

    # Every blocked message is also a violation, keyed by its sender so each user's strikes share a partition.
    blocked = {message_id for message_id, decision in decisions.items() if decision == "block"}
    violations = await read_until(settings, VIOLATIONS, until=lambda seen: len(seen) >= len(blocked))
    assert sorted(_ids(violations)) == sorted(blocked)
    for record in violations:
        violation = orjson.loads(record.value)
        assert record.key == violation["sender_id"].encode()
        assert record.partition == partition_for(record.key, settings.partitions)
        assert violation["rule_ids"]
        assert violation["categories"]

    # The worker's metrics count the same, by decision, with no id in any label.
    metrics = scrape(worker.metrics_port)
    assert metrics["groupwarden_messages_consumed_total"] == 3000
    for decision in ("allow", "review", "block"):
        expected = sum(1 for d in decisions.values() if d == decision)
        assert metrics[f'groupwarden_verdicts_total{{decision="{decision}"}}'] == expected
    assert metrics["groupwarden_verdict_latency_seconds_count"] == 3000
    assert metrics['groupwarden_verdict_categories_total{category="scam"}'] > 0
    assert metrics["groupwarden_last_processed_timestamp_seconds"] > 0
    assert not any(f'"m{n}"' in name or '"u1"' in name for name in metrics for n in (0, 1))


async def test_malformed_input_goes_to_dead_letters_and_the_worker_keeps_going(settings, start_worker):
    bad = [
        (b"g1", b"{not json"),
        (b"g1", b"\xff\xfe\x00 not utf-8"),
        (b"g1", b"[1, 2, 3]"),
        (b"g1", orjson.dumps({"message_id": "x1", "group_id": "g1", "sender_id": "u1", "sent_at": 1})),
        (
            b"g1",
            orjson.dumps(
                {"message_id": "x2", "group_id": "g1", "sender_id": "u1", "sent_at": "yesterday", "text": "hi"}
            ),
        ),
        (
            b"g1",
            orjson.dumps({"message_id": "x3", "group_id": "g1", "sender_id": "u1", "sent_at": 1, "text": "长" * 30000}),
        ),
    ]
    expected_reasons = ["invalid_json", "invalid_utf8", "not_an_object", "missing_field", "invalid_field", "too_large"]
    await produce(settings, [*bad, chat_message(1, group="g1")])
    worker = start_worker()

    dead = await read_until(settings, DEADLETTER, until=lambda seen: len(seen) >= len(bad))
    headers = [dict(r.headers) for r in dead]
    assert [h["groupwarden.error.reason"].decode() for h in headers] == expected_reasons
    assert [r.value for r in dead] == [value for _, value in bad]  # the original bytes, in order
    for header in headers:
        assert header["groupwarden.source.topic"].decode() == settings.topic(MESSAGES)
        assert header["groupwarden.error.detail"]
    offsets = [int(h["groupwarden.source.offset"]) for h in headers]
    assert offsets == sorted(offsets)
    assert len({h["groupwarden.source.partition"] for h in headers}) == 1

    # The worker is still running and still classifying.
    await produce(settings, [chat_message(2, group="g1")])
    verdicts = await read_until(settings, VERDICTS, until=lambda seen: {"m1", "m2"} <= set(_ids(seen)))
    assert sorted(_ids(verdicts)) == ["m1", "m2"]
    assert worker.alive()
    metrics = scrape(worker.metrics_port)
    for reason in expected_reasons:
        assert metrics[f'groupwarden_dead_letters_total{{reason="{reason}"}}'] == 1
    assert metrics['groupwarden_dead_letters_total{reason="classify_error"}'] == 0


async def test_librdkafka_producers_with_every_codec(settings, start_worker):
    codecs = ["gzip", "snappy", "lz4", "zstd"]
    for codec in codecs:
        producer = confluent_kafka.Producer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "compression.type": codec,
                "linger.ms": 20,
                "partitioner": "murmur2_random",
            },
        )
        for n in range(200):
            key, value = chat_message(n, prefix=f"{codec}-")
            producer.produce(settings.topic(MESSAGES), key=key, value=value)
        assert producer.flush(30) == 0
    start_worker()

    expected = {f"{codec}-{n}" for codec in codecs for n in range(200)}
    verdicts = await read_until(settings, VERDICTS, until=lambda seen: expected <= set(_ids(seen)))
    for codec in codecs:
        got = {i for i in _ids(verdicts) if i.startswith(f"{codec}-")}
        assert len(got) == 200, f"{codec}: {len(got)} of 200 verdicts"


def test_partitioning_matches_java_clients(settings):
    """librdkafka's murmur2 partitioner is the Java client's: our batches must land where theirs do."""
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": settings.bootstrap_servers, "partitioner": "murmur2_random"}
    )
    landed: dict[bytes, int] = {}

    def delivered(err, msg):
        assert err is None
        landed[msg.key()] = msg.partition()

    keys = [f"group-{n}".encode() for n in range(64)]
    for key in keys:
        producer.produce(settings.topic(VERDICTS), key=key, value=b"{}", on_delivery=delivered)
    assert producer.flush(30) == 0
    assert landed == {key: partition_for(key, settings.partitions) for key in keys}
    assert len(set(landed.values())) == settings.partitions


@pytest.mark.parametrize("example", ["produce_aiokafka.py", "produce_confluent.py"])
async def test_the_example_producers_messages_get_verdicts(settings, start_worker, example):
    script = Path(__file__).resolve().parents[2] / "examples" / example
    topic = settings.topic(MESSAGES)
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            "--bootstrap-servers",
            settings.bootstrap_servers,
            "--topic",
            topic,
            "--count",
            "6",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 6  # a line per acknowledged message
    start_worker()
    verdicts = await read_until(settings, VERDICTS, until=lambda seen: len(seen) >= 6)
    decisions = [orjson.loads(r.value)["decision"] for r in verdicts]
    assert len(decisions) == 6
    assert decisions.count("block") == 3  # every other example message is spam
    inputs = await read_until(settings, MESSAGES, until=lambda seen: len(seen) >= 6)
    for record in inputs:  # keyed by group, where every client's default partitioner puts that key
        assert record.key == orjson.loads(record.value)["group_id"].encode()
        assert record.partition == partition_for(record.key, settings.partitions)
