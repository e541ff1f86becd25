"""The main job on the embedded default: local broker + FullStory sandbox + sample events.

Starts the project's Kafka broker (scripts/kafka.sh) and the FullStory sandbox on
127.0.0.1, produces a sample stream of user changes (and a few bad records), runs
``python -m worker run`` until every offset is committed, then shows what FullStory
received, the committed offsets and the dead letters, and stops the worker with SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

from demo_tools import left_running, log_file, start_broker

from fullstory_sandbox import Sandbox
from tests.fakes.avro import encode, event
from tests.integration.kafka_tools import Broker
from tests.integration.oracle import fold_events, random_events
from tests.integration.worker_process import WorkerProcess, wait_until


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--batch-max-users", default="1000")
    parser.add_argument("--job-delay-ms", type=int, default=300)
    args = parser.parse_args()

    broker = start_broker()
    try:
        return demo(broker, args)
    finally:
        # Said last, also when the demo failed: the broker outlives it.
        left_running({"Kafka broker": broker.bootstrap})


def demo(broker: Broker, args: argparse.Namespace) -> int:
    """Stream the sample users through the worker; 0 when FullStory holds their fold."""
    run_id = uuid.uuid4().hex[:6]
    topic = broker.create_topic(args.partitions, prefix=f"demo-user-changes-{run_id}")
    dlq = broker.create_topic(1, prefix=f"demo-dlq-{run_id}")
    group = f"demo-{run_id}"

    events = random_events(args.events, uids=args.users, seed=42)
    bad = [(b"broken", b"\x03not avro"), (b"", encode(event("")))]
    print(
        f"==> producing {len(events)} user changes for {args.users} users "
        f"+ {len(bad)} bad records to {topic} ({args.partitions} partitions)"
    )
    broker.produce(topic, [(e["uid"].encode(), encode(e)) for e in events] + bad)

    api_key = "demo-key"
    log = log_file("worker.log")
    with Sandbox(api_key=api_key, job_delay_ms=args.job_delay_ms) as sandbox:
        print(f"==> FullStory sandbox at {sandbox.url}; starting the worker (log: {log})")
        worker = WorkerProcess(
            {
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                "KAFKA_TOPICS": topic,
                "KAFKA_GROUP_ID": group,
                "DLQ_TOPIC": dlq,
                "FULLSTORY_API_KEY": api_key,
                "FULLSTORY_API_URL": sandbox.url,
                "BATCH_MAX_USERS": args.batch_max_users,
                "BATCH_MAX_WAIT_MS": "500",
                "HTTP_PORT": "0",
            },
            log,
        )
        started = time.monotonic()
        end = broker.end_offsets(topic)
        try:
            wait_until(
                lambda: broker.committed(group, topic) == end,
                300,
                "the worker to commit every offset",
            )
        finally:
            seconds = time.monotonic() - started
            peak_rss = worker.peak_rss_mib()
            status = worker.terminate()
        users = sandbox.users()
        jobs = sandbox.jobs()
        expected = fold_events(events)
        matches = sum(
            1
            for uid, want in expected.items()
            if uid in users
            and all(users[uid].get(k) == want[k] for k in ("display_name", "email"))
            and users[uid].get("properties", {}) == want["properties"]
        )
        rss = f"{peak_rss:.0f} MiB" if peak_rss is not None else "unknown"
        print(
            f"==> drained {len(events) + len(bad)} records in {seconds:.1f}s "
            f"({(len(events) + len(bad)) / seconds:,.0f} records/s, worker start-up included); "
            f"worker peak RSS {rss}; exit status {status}"
        )
        print(
            f"    FullStory received {len(users)} users in {len(jobs)} import jobs; "
            f"{matches}/{len(expected)} match the fold of their events"
        )
        sample = sorted(users)[:3]
        for uid in sample:
            print(f"    {uid}: {json.dumps(users[uid], sort_keys=True)}")
        print(f"    committed offsets ({group}): {broker.committed(group, topic)}")
        print(f"    log end offsets:            {end}")
        letters = broker.read_all(dlq, expected=len(bad), timeout_s=15)
        for message in letters:
            headers = dict(message.headers() or [])
            print(
                f"    dead letter: key={message.key()!r} "
                f"code={headers.get('dlq.error.code', b'').decode()} "
                f"offset={headers.get('dlq.source.offset', b'').decode()}"
            )
    ok = status == 0 and matches == len(expected) and len(letters) == len(bad)
    print("==> OK" if ok else "==> MISMATCH (see .demo/worker.log)")
    if ok:
        print(
            "    the sandbox has stopped. Next, your own topic: README.md,"
            ' "Run it against your own cluster" (on this broker and a sandbox of your own to start)'
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
