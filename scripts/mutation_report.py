"""Mutation testing of the worker's core: run mutmut, then report what the tests missed.

    python scripts/mutation_report.py run [--jobs N] [MUTANT ...]   (what `make mutation` runs)
    python scripts/mutation_report.py                                (report the last run again)

``run`` without names starts from an empty ``mutants/``: mutmut keeps a verdict until the
mutated function changes, so a survivor stays "survived" after a new test would kill it.
With names (globs such as ``'worker.loop.batch.*'``) only those mutants are tested again, on the
existing cache, and the rest keep their verdicts.

The report prints, per module, how many mutants the fast tier killed (a test failed), timed
out (a test hung and mutmut killed it; the behaviour changed, so it counts as detected) or
missed (survived, or no test runs the function at all), and every missed mutant with its line
and diff. Missed mutants listed in ``scripts/mutation_equivalents.toml`` (same module, function
and change, with the reason they cannot change what a user sees) are shown as equivalent.
The same list goes to ``.mutation/survivors.txt``, the numbers to ``.mutation/summary.json``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".mutation"
EQUIVALENTS = ROOT / "scripts" / "mutation_equivalents.toml"
MUTMUT = Path(sys.executable).parent / "mutmut"

DETECTED = ("killed", "timeout", "caught by type check")
MISSED = ("survived", "no tests", "suspicious", "not checked", "segfault")


@dataclass(frozen=True)
class Mutant:
    name: str
    module: str  # worker/loop/commit/watermark.py
    function: str  # OffsetTracker.track
    status: str
    line: int
    diff: str
    change: tuple[str, ...]  # the removed and added lines, stripped: what the mutant does

    @property
    def short(self) -> str:
        return self.name.rpartition(".")[2].replace("\u01c1", ".").removeprefix("x.")


def _mutmut_api():  # type: ignore[no-untyped-def]
    """mutmut's readers for its own cache (pinned in pyproject, so their shape is known)."""
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    return (
        SourceFileMutationData,
        get_diff_for_mutant,
        status_by_exit_code,
        orig_function_and_class_names_from_key,
    )


def _modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    return list(config["only_mutate"])


def _function_starts(path: Path) -> dict[tuple[str | None, str], int]:
    """First line (decorator or ``def``) of every top-level function and method."""
    starts: dict[tuple[str | None, str], int] = {}
    tree = ast.parse(path.read_text())
    for node in tree.body:
        owners: list[tuple[str | None, ast.AST]] = [(None, node)]
        if isinstance(node, ast.ClassDef):
            owners = [(node.name, child) for child in node.body]
        for owner, item in owners:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([d.lineno for d in item.decorator_list] + [item.lineno])
                starts[(owner, item.name)] = first
    return starts


_HUNK = re.compile(r"^@@ -(\d+)")


def _changed_line(diff: str) -> int:
    """1-based line, within the function as the diff shows it, of the first changed line."""
    old = 0
    for line in diff.splitlines():
        if match := _HUNK.match(line):
            old = int(match.group(1)) - 1
            continue
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("-") or line.startswith("+"):
            return old + 1
        old += 1
    return 1


def _first_code_line(diff: str) -> int:
    """1-based line, within the function as the diff shows it, of its decorator or ``def``."""
    number = 0
    for line in diff.splitlines():
        if _HUNK.match(line) or line.startswith(("---", "+++")) or line.startswith("+"):
            continue
        number += 1
        if line[1:].lstrip().startswith(("@", "def ", "async def ")):
            return number
    return 1


def load_mutants() -> list[Mutant]:
    data_class, get_diff, status_by_exit_code, names_from_key = _mutmut_api()
    mutants: list[Mutant] = []
    os.chdir(ROOT)
    for module in _modules():
        data = data_class(path=Path(module))
        data.load()
        starts = _function_starts(ROOT / module)
        for name, exit_code in data.exit_code_by_key.items():
            function, owner = names_from_key(name)
            status = status_by_exit_code[exit_code]
            diff = get_diff(name, path=module)
            start = starts.get((owner, function), 0)
            line = start + _changed_line(diff) - _first_code_line(diff)
            change = tuple(
                text[0] + " " + text[1:].strip()
                for text in diff.splitlines()[2:]
                if text[:1] in "+-" and not _HUNK.match(text)
            )
            qualname = f"{owner}.{function}" if owner else function
            mutants.append(Mutant(name, module, qualname, status, line, diff, change))
    return mutants


Key = tuple[str, str, tuple[str, ...] | None]


def _normalized(change: str) -> tuple[str, ...]:
    return tuple(text[0] + " " + text[1:].strip() for text in change.strip().splitlines())


def load_equivalents() -> dict[Key, str]:
    """Known equivalent mutants: (module, function, change or None for all) -> why."""
    if not EQUIVALENTS.exists():
        return {}
    known: dict[Key, str] = {}
    for entry in tomllib.loads(EQUIVALENTS.read_text()).get("equivalent", []):
        changes = entry.get("change")
        if changes is None:
            known[(entry["module"], entry["function"], None)] = entry["why"]
            continue
        for change in [changes] if isinstance(changes, str) else changes:
            known[(entry["module"], entry["function"], _normalized(change))] = entry["why"]
    return known


def report(mutants: list[Mutant]) -> int:
    """Print the scores and the missed mutants; write them to .mutation/. Returns #real gaps."""
    equivalents = load_equivalents()
    used: set[Key] = set()
    by_module: dict[str, Counter[str]] = {}
    missed: list[tuple[Mutant, str | None]] = []
    for mutant in mutants:
        counts = by_module.setdefault(mutant.module, Counter())
        counts[mutant.status] += 1
        if mutant.status in MISSED:
            why = None
            for key in (
                (mutant.module, mutant.function, mutant.change),
                (mutant.module, mutant.function, None),
            ):
                if key in equivalents:
                    why = equivalents[key]
                    used.add(key)
                    break
            counts["equivalent" if why else "gap"] += 1
            missed.append((mutant, why))

    run = json.loads((OUT / "run.json").read_text()) if (OUT / "run.json").exists() else {}
    header = (
        f"{'module':<22}{'mutants':>8}{'killed':>8}{'timeout':>8}{'survived':>9}"
        f"{'no tests':>9}{'equiv.':>7}{'score':>8}{'adj.':>8}"
    )
    lines = ["Mutation score of the core on the fast tier (tests/unit, tests/component)", ""]
    lines.append(header)
    total: Counter[str] = Counter()
    summary: dict[str, dict[str, float | int]] = {}
    for module, counts in sorted(by_module.items()):
        total.update(counts)
        lines.append(_row(Path(module).stem, counts))
        summary[module] = _numbers(counts)
    lines.append(_row("all", total))
    summary["all"] = _numbers(total)
    lines.append("")
    lines.append(
        "score = (killed + timeout) / mutants; adj. leaves the listed equivalent mutants out."
    )
    if full := run.get("full"):
        lines.append(f"full run: {full['command']}  ({full['wall_s']:.0f} s wall, {full['when']})")
    for retest in run.get("retested", []):
        lines.append(
            f"re-tested since: {retest['command']}  ({retest['wall_s']:.0f} s, {retest['when']})"
        )
    unused = sorted(set(equivalents) - used)
    if unused:
        lines.append(
            f"{len(unused)} entries of {EQUIVALENTS.relative_to(ROOT)} match no missed mutant "
            "(killed now, or the code moved): " + ", ".join(sorted({k[1] for k in unused}))
        )
    lines.append("")

    gaps = [(m, why) for m, why in missed if why is None]
    lines.append(f"Missed mutants: {len(missed)} ({len(gaps)} not known to be equivalent)")
    for mutant, why in sorted(missed, key=lambda x: (x[0].module, x[0].line, x[0].name)):
        verdict = f"equivalent: {why}" if why else "GAP"
        lines.append("")
        lines.append(f"{mutant.module}:{mutant.line}  {mutant.short}  [{mutant.status}]  {verdict}")
        lines.extend("    " + text for text in mutant.diff.splitlines()[2:])
    text = "\n".join(lines) + "\n"
    print(text, end="")

    OUT.mkdir(exist_ok=True)
    (OUT / "survivors.txt").write_text(text)
    (OUT / "summary.json").write_text(
        json.dumps(
            {
                "run": run,
                "modules": summary,
                "missed": [
                    {
                        "module": m.module,
                        "line": m.line,
                        "mutant": m.name,
                        "status": m.status,
                        "equivalent": why,
                        "diff": m.diff,
                    }
                    for m, why in missed
                ],
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    print(f"\nwritten: {OUT.relative_to(ROOT)}/survivors.txt, {OUT.relative_to(ROOT)}/summary.json")
    return len(gaps)


def _numbers(counts: Counter[str]) -> dict[str, float | int]:
    mutants = sum(counts[s] for s in DETECTED + MISSED + ("skipped",))
    detected = sum(counts[s] for s in DETECTED)
    tested = mutants - counts["skipped"]
    adjusted = tested - counts["equivalent"]
    return {
        "mutants": mutants,
        "killed": counts["killed"],
        "timeout": counts["timeout"],
        "survived": counts["survived"],
        "no_tests": counts["no tests"],
        "equivalent": counts["equivalent"],
        "gaps": counts["gap"],
        "score": round(100 * detected / tested, 1) if tested else 0.0,
        "adjusted_score": round(100 * detected / adjusted, 1) if adjusted else 0.0,
    }


def _row(name: str, counts: Counter[str]) -> str:
    n = _numbers(counts)
    return (
        f"{name:<22}{n['mutants']:>8}{n['killed']:>8}{n['timeout']:>8}{n['survived']:>9}"
        f"{n['no_tests']:>9}{n['equivalent']:>7}{n['score']:>7.1f}%{n['adjusted_score']:>7.1f}%"
    )


def run(jobs: int, names: list[str]) -> int:
    os.chdir(ROOT)
    if not names:
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    command = [str(MUTMUT), "run", "--max-children", str(jobs), *names]
    shown = " ".join(["mutmut", *command[1:]])
    print(f"$ {shown}", flush=True)
    started = time.monotonic()
    # mutmut draws a progress line per mutant; keep the terminal readable, keep its log.
    OUT.mkdir(exist_ok=True)
    with open(OUT / "mutmut.log", "w") as log:
        process = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    wall = time.monotonic() - started
    if process.returncode != 0:
        print(
            f"mutmut failed (exit {process.returncode}); see {OUT.relative_to(ROOT)}/mutmut.log:",
            file=sys.stderr,
        )
        tail = (OUT / "mutmut.log").read_text(errors="replace")[-3000:]
        print(tail, file=sys.stderr)
        return process.returncode
    this = {"command": shown, "wall_s": round(wall, 1), "when": time.strftime("%Y-%m-%d %H:%M")}
    runs: dict[str, Any] = {"full": this, "retested": []}
    if names and (OUT / "run.json").exists():
        runs = json.loads((OUT / "run.json").read_text())
        runs.setdefault("retested", []).append(this)
    (OUT / "run.json").write_text(json.dumps(runs, indent=2) + "\n")
    report(load_mutants())
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    run_parser = sub.add_parser("run", help="run mutmut, then report")
    run_parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once")
    run_parser.add_argument("names", nargs="*", help="re-test only these mutants (globs)")
    args = parser.parse_args()
    if args.command == "run":
        return run(args.jobs, args.names)
    if not (ROOT / "mutants").exists():
        print("no mutation run yet: make mutation", file=sys.stderr)
        return 1
    report(load_mutants())
    return 0


if __name__ == "__main__":
    sys.exit(main())
