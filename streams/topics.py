"""Every topic groupwarden reads or writes, with its partitions and retention, and how to create them."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.config import Settings
from streams.metrics import TABLES

MESSAGES = "chat.messages.v1"  # key: group_id
VERDICTS = "moderation.verdicts.v1"  # key: group_id
SHADOW_VERDICTS = "moderation.shadow-verdicts.v1"  # key: group_id; a candidate pack's verdicts, which change nothing
DEADLETTER = "moderation.deadletter.v1"  # key: the original key
VIOLATIONS = "moderation.violations.v1"  # key: sender_id, so each user's strikes live on one partition
GROUP_EVENTS = "chat.group-events.v1"  # key: group_id; created, member joined/left, managers, ownership
COMMANDS = "moderation.commands.v1"  # appeals and operator commands: pardon a message, unban, lift a suspension
SANCTIONS = "moderation.sanctions.v1"  # key: subject ("user:<id>", "group:<id>"); every action, and revocations
BLACKLIST = "moderation.blacklist.v1"  # compacted; key "user:<id>" | "group:<id>" | "link:<domain>"; tombstones
AUDIT = "moderation.audit.v1"  # every decision with its evidence, kept for more than 180 days
NOTICES = "moderation.notices.v1"  # public announcements: a link campaign's domain is blacklisted
# Internal inboxes of the standing tables, keyed like the table they feed.
USER_ACTIONS = "groupwarden.user-actions.v1"  # key: user id; leader liabilities, pardons, unbans, expiry ticks
GROUP_ACTIONS = "groupwarden.group-actions.v1"  # key: group_id; violations by group, pardons, lifts, ticks
LINK_ACTIONS = "groupwarden.link-actions.v1"  # key: domain; violations by the domains they link to, ticks

_DAY_MS = 24 * 3600 * 1000
_TOPIC_EXISTS = 36


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    config: dict[str, str] = field(default_factory=dict)
    partitions: int | None = None  # None: the settings' partition count, so keyed topics stay co-partitioned
    prefixed: bool = True  # False: named after the consumer group, not the topic prefix


TOPICS = (
    TopicSpec(MESSAGES, {"retention.ms": str(7 * _DAY_MS)}),
    TopicSpec(VERDICTS, {"retention.ms": str(30 * _DAY_MS)}),
    TopicSpec(SHADOW_VERDICTS, {"retention.ms": str(30 * _DAY_MS)}),
    TopicSpec(DEADLETTER, {"retention.ms": str(30 * _DAY_MS)}),
    TopicSpec(VIOLATIONS, {"retention.ms": str(30 * _DAY_MS)}),
    TopicSpec(GROUP_EVENTS, {"retention.ms": "-1"}),  # membership is rebuilt from it: keep it all
    TopicSpec(COMMANDS, {"retention.ms": str(365 * _DAY_MS)}),
    TopicSpec(SANCTIONS, {"retention.ms": str(365 * _DAY_MS)}),
    TopicSpec(BLACKLIST, {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}),
    TopicSpec(AUDIT, {"retention.ms": str(400 * _DAY_MS)}),
    TopicSpec(NOTICES, {"retention.ms": str(365 * _DAY_MS)}),
    TopicSpec(USER_ACTIONS, {"retention.ms": str(30 * _DAY_MS)}),
    TopicSpec(GROUP_ACTIONS, {"retention.ms": str(30 * _DAY_MS)}),
    TopicSpec(LINK_ACTIONS, {"retention.ms": str(30 * _DAY_MS)}),
)


def changelog_topic(settings: Settings, table: str) -> str:
    """A standing table's compacted changelog, partitioned like the table. Named after the consumer group, as Faust
    names its tables' changelogs: a deployment that kept its tables in Faust's keeps them."""
    return f"{settings.group_id}-{table}-changelog"


def worker_topics(settings: Settings) -> tuple[TopicSpec, ...]:
    """The topics named after the worker's consumer group: the standing tables' compacted changelogs, and the leader
    topic Faust keeps (Faust creates it when it starts; created here too, so a broker that lost it, restarted empty,
    gets it back with the right partitions rather than with the ones it gives topics it does not know)."""
    changelogs = tuple(
        TopicSpec(
            changelog_topic(settings, table),
            {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
            prefixed=False,
        )
        for table in TABLES
    )
    return (*changelogs, TopicSpec(f"{settings.group_id}-__assignor-__leader", partitions=1, prefixed=False))


class TopicError(RuntimeError):
    pass


def _name(settings: Settings, spec: TopicSpec) -> str:
    return settings.topic(spec.name) if spec.prefixed else spec.name


async def create_topics(settings: Settings, specs: tuple[TopicSpec, ...] | None = None) -> list[str]:
    """Create the topics that do not exist yet (by default every one the worker needs); return the names created."""
    if specs is None:
        specs = TOPICS + worker_topics(settings)
    admin = AIOKafkaAdminClient(**settings.kafka_options())
    await admin.start()
    try:
        wanted = [
            NewTopic(
                _name(settings, s),
                s.partitions or settings.partitions,
                settings.replication_factor,
                topic_configs=dict(s.config),
            )
            for s in specs
        ]
        response = await admin.create_topics(wanted)
        created = []
        for name, code, message in response.topic_errors:
            if code == 0:
                created.append(name)
            elif code != _TOPIC_EXISTS:
                raise TopicError(f"cannot create topic {name}: error {code} {message or ''}".strip())
        return created
    finally:
        await admin.close()


async def check_topics(settings: Settings, specs: tuple[TopicSpec, ...] = TOPICS) -> None:
    """Refuse to start without the topics (a broker makes up those it does not know, with partitions of its own), or
    on topics whose partition counts differ from the settings: tables need them equal."""
    admin = AIOKafkaAdminClient(**settings.kafka_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())  # describing a missing topic may create it
        if missing := [_name(settings, s) for s in specs if _name(settings, s) not in existing]:
            raise TopicError(
                f"{len(missing)} topics missing at {settings.bootstrap_servers}: {', '.join(missing)};"
                " create them with `groupwarden topics create` (same settings), then start the worker"
            )
        names = [settings.topic(s.name) for s in specs if s.partitions is None and settings.topic(s.name) in existing]
        found = await admin.describe_topics(names) if names else []
    finally:
        await admin.close()
    for topic in found:
        count = len(topic.get("partitions", []))
        if topic.get("error_code", 0) == 0 and count and count != settings.partitions:
            raise TopicError(
                f"topic {topic['topic']} has {count} partitions but GROUPWARDEN_PARTITIONS is {settings.partitions}:"
                " set it to the topics' count (keyed topics and tables must agree)"
            )
