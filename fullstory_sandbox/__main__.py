"""Command line: `python -m fullstory_sandbox` / `fullstory-sandbox`.

Serves until SIGTERM or SIGINT. Prints the base URL on stdout once listening (and writes
it to `--port-file`, atomically, for scripts that start it on port 0); logs one line per
request to stderr. Exit status: 0 after a signal, 2 for bad arguments (such as a host
that is not a loopback address).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from fullstory_sandbox.server import Sandbox
from fullstory_sandbox.settings import Settings, SettingsError

API_KEY_ENV = "FULLSTORY_SANDBOX_API_KEY"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fullstory-sandbox", description="Serve the FullStory v2 API sandbox on loopback."
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=8787, help="0 picks a free port")
    parser.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV),
        help=f"the accepted key (default: ${API_KEY_ENV})",
    )
    parser.add_argument("--job-delay-ms", type=int, default=300)
    parser.add_argument("--job-jitter-ms", type=int, default=0)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument(
        "--no-replay-errors",
        dest="replay_errors",
        action="store_false",
        help="do not save 5xx answers under their Idempotency-Key",
    )
    parser.add_argument(
        "--standard-key",
        dest="api_key_admin",
        action="store_false",
        help="the key lacks the Admin/Architect role: GET and DELETE /v2/users answer 403",
    )
    parser.add_argument(
        "--user-delete-ms",
        type=int,
        default=1000,
        help="how long a deletion runs in the background (GET shows is_being_deleted)",
    )
    parser.add_argument("--max-batch-requests", type=int, default=50_000)
    parser.add_argument("--max-running-jobs", type=int, default=100)
    parser.add_argument("--max-in-progress-jobs", type=int, default=200)
    parser.add_argument("--max-in-flight-requests", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=None, help="seed for job jitter")
    parser.add_argument(
        "--faults",
        default=None,
        help='initial faults spec as JSON, e.g. \'{"reject_uids": "^bad"}\'',
    )
    parser.add_argument(
        "--port-file", type=Path, default=None, help="write the base URL here once listening"
    )
    parser.add_argument("--quiet", action="store_true", help="no per-request log lines")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if not args.api_key:
            raise SettingsError(f"--api-key (or ${API_KEY_ENV}) is required")
        settings = Settings(
            api_key=args.api_key,
            api_key_admin=args.api_key_admin,
            user_delete_ms=args.user_delete_ms,
            host=args.host,
            port=args.port,
            job_delay_ms=args.job_delay_ms,
            job_jitter_ms=args.job_jitter_ms,
            page_size=args.page_size,
            replay_errors=args.replay_errors,
            max_batch_requests=args.max_batch_requests,
            max_running_jobs=args.max_running_jobs,
            max_in_progress_jobs=args.max_in_progress_jobs,
            max_in_flight_requests=args.max_in_flight_requests,
            seed=args.seed,
        )
        faults = json.loads(args.faults) if args.faults else None
        sandbox = Sandbox.from_settings(settings, faults)
    except (ValueError, TypeError) as exc:
        print(f"fullstory-sandbox: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(message)s",
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with sandbox:
        print(sandbox.url, flush=True)
        if args.port_file is not None:
            _write_atomically(args.port_file, sandbox.url + "\n")
        while not stop.wait(1.0):
            pass  # the signal handler sets `stop`; waking each second keeps signals prompt
    return 0


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


if __name__ == "__main__":
    sys.exit(main())
