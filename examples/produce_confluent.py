"""Publish group chat messages to groupwarden with confluent-kafka (librdkafka), as most non-Python stacks do.

    pip install confluent-kafka
    python produce_confluent.py --bootstrap-servers kafka:9092 --count 10

What matters for groupwarden: key every message by its group_id with the murmur2 partitioner (Java's default;
librdkafka's default differs), keep message_id unique, send the JSON of schemas/chat-message.v1.json, and check each
delivery report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

from confluent_kafka import KafkaError, Message, Producer


def message(n: int) -> dict[str, object]:
    return {
        "message_id": f"confluent-{uuid.uuid4().hex}",
        "group_id": f"group-{n % 3}",
        "sender_id": f"user-{n % 5}",
        "sent_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "text": "明天的会议改到下午三点" if n % 2 else "澳门在线赌场，注册就送，bet365点com",
        "links": [],
    }


def main(bootstrap_servers: str, topic: str, count: int) -> int:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": "zstd",
            "linger.ms": 5,
            "partitioner": "murmur2_random",  # where Java and aiokafka clients put the same key
        }
    )
    failures = []

    def delivered(error: KafkaError | None, record: Message) -> None:
        if error is not None:
            failures.append(error)
        else:
            print(f"{record.topic()}[{record.partition()}]@{record.offset()}")

    for n in range(count):
        value = message(n)
        producer.produce(
            topic, json.dumps(value, ensure_ascii=False).encode(), key=str(value["group_id"]), on_delivery=delivered
        )
    remaining = producer.flush(30)
    if failures or remaining:
        print(f"not delivered: {len(failures) + remaining} ({failures[:3]})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", default="localhost:9092")
    parser.add_argument("--topic", default="chat.messages.v1")
    parser.add_argument("--count", type=int, default=10)
    args = parser.parse_args()
    sys.exit(main(args.bootstrap_servers, args.topic, args.count))
