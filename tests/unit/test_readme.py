"""README.md as a new user follows it: its links land on a heading, and the way to your own
cluster creates the topics the way the worker itself does."""

import re
from pathlib import Path

from worker.config.spec import SPEC
from worker.kafka.topics import DLQ_RETENTION_MS

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _section(markdown: str, title: str) -> str:
    start = markdown.index(f"\n## {title}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else None]


def test_every_link_to_a_readme_section_lands_on_a_heading():
    """A link into the README (from itself or from another doc) that names no heading leaves
    the reader at the top of a long page."""
    readme = README.read_text()
    anchors = {_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", readme, flags=re.MULTILINE)}
    links = set(re.findall(r"\]\(#([^)]+)\)", readme))
    for doc in ROOT.glob("**/*.md"):
        if ".venv" not in doc.parts and doc != README:
            links |= set(re.findall(r"README\.md#([\w-]+)", doc.read_text()))
    assert links, "the README links to none of its sections"
    assert links - anchors == set()


def test_your_own_cluster_comes_before_the_reference_and_creates_the_dlq_as_the_worker_does():
    """The steps to your own cluster come before the settings table, in order (create the
    topics, check, preview, run, the chart), and the DLQ's kafka-topics.sh command keeps dead
    letters as long as `check --create-dlq` does."""
    readme = README.read_text()
    steps = _section(readme, "Run it against your own cluster")
    assert readme.index(steps) < readme.index("\n### Settings\n")
    order = [
        "kafka-topics.sh",
        "fullstory-user-sync check --create-dlq",
        "fullstory-user-sync check ",
        "fullstory-user-sync preview",
        "fullstory-user-sync run",
        "helm install",
    ]
    positions = [steps.index(step) for step in order]
    assert positions == sorted(positions)
    dlq = SPEC["DLQ_TOPIC"].default
    commands = steps.replace("\\\n", " ")  # a shell command continued on the next line
    create = re.search(rf"kafka-topics\.sh [^\n]*--create --topic {dlq} [^\n]*", commands)
    assert create, "no kafka-topics.sh command creates the DLQ"
    assert f"--config retention.ms={DLQ_RETENTION_MS}" in create.group(0)
