"""True end offsets: table recovery must read a changelog to its last record, whatever ListOffsets says."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.config import Settings
from streams.state.recovery import true_end_offsets


async def write_batches(settings: Settings, topic: str, sizes: list[int]) -> None:
    """Each size is one record batch on partition 0, as a producer flushing between table writes makes."""
    admin = AIOKafkaAdminClient(**settings.kafka_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(acks="all", **settings.kafka_options())
    await producer.start()
    try:
        n = 0
        for size in sizes:
            batch = producer.create_batch()
            for _ in range(size):
                batch.append(key=b"k%d" % n, value=b"v", timestamp=None)
                n += 1
            await (await producer.send_batch(batch, topic, partition=0))
    finally:
        await producer.stop()


async def listed_end_offsets(settings: Settings, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**settings.kafka_options())
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def test_end_offsets_count_every_record_of_the_last_batch(settings: Settings) -> None:
    topic = settings.topic("changelog-like")
    await write_batches(settings, topic, [5, 10])
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]

    ends = await true_end_offsets(settings.kafka_options(), tps)

    assert ends == {tps[0]: 15, tps[1]: 0}
    # What recovery would otherwise trust: the embedded broker reports the last batch's first offset + 1 (6).
    # Should a broker version report 15, this fails, and the workaround can go.
    assert (await listed_end_offsets(settings, tps))[tps[0]] < 15


async def test_end_offsets_of_single_record_batches_are_exact(settings: Settings) -> None:
    topic = settings.topic("one-per-batch")
    await write_batches(settings, topic, [1, 1, 1])
    tp = TopicPartition(topic, 0)
    assert await true_end_offsets(settings.kafka_options(), [tp]) == {tp: 3}
