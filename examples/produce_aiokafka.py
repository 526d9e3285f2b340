"""Publish group chat messages to groupwarden with aiokafka (asyncio).

    pip install 'aiokafka[lz4]' orjson
    python produce_aiokafka.py --bootstrap-servers kafka:9092 --count 10

What matters for groupwarden: key every message by its group_id, keep message_id unique, send the JSON of
schemas/chat-message.v1.json, and wait for the acknowledgement (acks=all) before counting a message as sent.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import orjson
from aiokafka import AIOKafkaProducer


def message(n: int) -> dict[str, object]:
    return {
        "message_id": f"aiokafka-{uuid.uuid4().hex}",
        "group_id": f"group-{n % 3}",
        "sender_id": f"user-{n % 5}",
        "sent_at": int(time.time() * 1000),  # or RFC 3339 with an offset: "2026-11-22T09:30:00+08:00"
        "text": "周末一起去爬山吗" if n % 2 else "刷单返利，日赚五百，加V详聊",
        "client": "android",
    }


async def main(bootstrap_servers: str, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", compression_type="lz4", linger_ms=5)
    await producer.start()
    try:
        sent = []
        for n in range(count):
            value = message(n)
            key = str(value["group_id"]).encode()  # the default partitioner (murmur2) puts a group on one partition
            sent.append(await producer.send(topic, orjson.dumps(value), key=key))
        for metadata in await asyncio.gather(*sent):  # every message acknowledged
            print(f"{metadata.topic}[{metadata.partition}]@{metadata.offset}")
    finally:
        await producer.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", default="localhost:9092")
    parser.add_argument("--topic", default="chat.messages.v1")
    parser.add_argument("--count", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.bootstrap_servers, args.topic, args.count))
