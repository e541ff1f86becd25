"""``check``'s Kafka items: the brokers, each source topic, the DLQ topic (``--create-dlq``
creates it), the group. Admin calls only, each bounded by the timeout; nothing joins the
group, commits or writes a record (the DLQ's writability is what the broker's authorizer says
this client may do, asked without writing)."""

from __future__ import annotations

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from worker.config.settings import Settings
from worker.errors import WorkerError
from worker.kafka.clients import describe, kafka_client, quiet_config, wait
from worker.kafka.topics import (
    DLQ_RETENTION_MS,
    TopicsFound,
    create_dlq,
    create_dlq_command,
    find_topics,
)
from worker.ops.checklist import Item

_NOTHING_COMMITTED = -1001  # librdkafka's OFFSET_INVALID
_SHOWN_PARTITIONS = 8  # committed offsets named on the group's line; --json has them all


class KafkaCheck:
    def __init__(self, settings: Settings, timeout_s: float) -> None:
        self._settings = settings
        self._kafka = settings.kafka
        self._timeout_s = timeout_s
        self._admin = kafka_client(self._kafka, lambda: AdminClient(quiet_config(self._kafka)))

    def items(self, create: bool) -> list[Item]:
        """One item per peer; with ``create``, a missing DLQ topic is created first."""
        brokers = self._brokers()
        topics = [*self._kafka.topics, self._settings.dlq_topic]
        names = [f"source topic {t}" for t in self._kafka.topics]
        names += [f"dlq topic {self._settings.dlq_topic}", f"group {self._kafka.group_id}"]
        if not brokers.ok:
            return [brokers, *(Item(n, False, "not checked: Kafka did not answer") for n in names)]
        try:
            found = find_topics(self._admin, topics, self._timeout_s)
        except WorkerError as exc:
            return [brokers, *(Item(n, False, str(exc)) for n in names)]
        sources = [self._source(t, found) for t in self._kafka.topics]
        return [brokers, *sources, self._dlq(found, create), self._group(found)]

    def _brokers(self) -> Item:
        bootstrap = self._kafka.bootstrap_servers
        fix = (
            "check KAFKA_BOOTSTRAP_SERVERS, the KAFKA_CFG_* security settings, and that this "
            "host reaches the brokers"
        )
        try:
            future = self._admin.describe_cluster(request_timeout=self._timeout_s)
            cluster = wait(future, self._timeout_s + 1, "a description of the cluster")
        except (WorkerError, KafkaException) as exc:
            reason = describe(exc) if isinstance(exc, KafkaException) else str(exc)
            return Item("kafka", False, f"{bootstrap}: {reason}", fix)
        count = len(cluster.nodes)
        return Item("kafka", True, f"{bootstrap}: {count} broker{'s' * (count != 1)} answered")

    def _partitions_wanted(self, found: TopicsFound) -> int:
        counts = [found.partitions[t] for t in self._kafka.topics if t in found.partitions]
        return max(counts, default=1)

    def _source(self, topic: str, found: TopicsFound) -> Item:
        name = f"source topic {topic}"
        if topic in found.missing:
            command = (
                f"kafka-topics.sh --bootstrap-server {self._kafka.bootstrap_servers} --create"
                f" --topic {topic} --partitions N"
            )
            return Item(name, False, "does not exist", f"check KAFKA_TOPICS, or `{command}`")
        allowed = found.operations.get(topic)
        if allowed is not None and "READ" not in allowed:
            return Item(name, False, "this client may not read it", f"grant READ on {topic}")
        count = found.partitions[topic]
        return Item(name, True, f"{count} partitions, readable", data={"partitions": count})

    def _dlq(self, found: TopicsFound, create: bool) -> Item:
        topic = self._settings.dlq_topic
        name = f"dlq topic {topic}"
        partitions = self._partitions_wanted(found)
        if topic in found.missing:
            command = create_dlq_command(topic, self._kafka.bootstrap_servers, partitions)
            if not create:
                fix = f"`fullstory-user-sync check --create-dlq`, or `{command}`"
                return Item(name, False, "does not exist", fix)
            try:
                create_dlq(self._admin, topic, partitions, self._timeout_s)
            except WorkerError as exc:
                return Item(name, False, f"not created: {exc}", f"`{command}`")
            days = DLQ_RETENTION_MS // (24 * 3600 * 1000)
            detail = f"created: {partitions} partitions, {days} days' retention"
            return Item(name, True, detail)
        allowed = found.operations.get(topic)
        if allowed is None:
            writable = "writability is proven by the first dead letter (the broker did not say)"
        elif "WRITE" in allowed:
            writable = "writable (the broker's authorizer says so; nothing was written)"
        else:
            return Item(name, False, "this client may not write to it", f"grant WRITE on {topic}")
        count = found.partitions[topic]
        return Item(name, True, f"{count} partitions, {writable}", data={"partitions": count})

    def _committed(self, group: str, tps: list[TopicPartition]) -> list[TopicPartition]:
        request = [ConsumerGroupTopicPartitions(group, tps)]
        asked = self._admin.list_consumer_group_offsets(request, request_timeout=self._timeout_s)
        listed = wait(asked[group], self._timeout_s + 1, "the committed offsets")
        return list(listed.topic_partitions or [])

    def _group(self, found: TopicsFound) -> Item:
        group = self._kafka.group_id
        name = f"group {group}"
        tps = [
            TopicPartition(t, p)
            for t in self._kafka.topics
            for p in range(found.partitions.get(t, 0))
        ]
        try:
            described = self._admin.describe_consumer_groups(
                [group], request_timeout=self._timeout_s
            )
            description = wait(described[group], self._timeout_s + 1, "the group's description")
            listed = tps and self._committed(group, tps)
        except WorkerError as exc:
            return Item(name, False, str(exc), f"grant DESCRIBE and READ on group {group}")
        committed = [
            f"{tp.topic}[{tp.partition}]@{tp.offset}"
            for tp in listed or []
            if tp.offset != _NOTHING_COMMITTED
        ]
        members = len(description.members)
        shown = ", ".join(committed[:_SHOWN_PARTITIONS])
        more = len(committed) - _SHOWN_PARTITIONS
        shown += f", and {more} more" if more > 0 else ""
        offsets = f"committed on {len(committed)} of {len(tps)} partitions" + (
            f": {shown}" if committed else " (the worker starts at auto.offset.reset)"
        )
        state = description.state.name.lower()
        if state == "dead" and not members and not committed:
            state = "not created yet"
        detail = f"{state}, {members} member{'s' * (members != 1)}; {offsets}"
        data = {
            "state": description.state.name,
            "members": members,
            "committed": {
                f"{tp.topic}[{tp.partition}]": None
                if tp.offset == _NOTHING_COMMITTED
                else tp.offset
                for tp in listed or []
            },
        }
        return Item(name, True, detail, data=data)
