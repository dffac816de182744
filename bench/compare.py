"""This commit against a base commit, in one run: the webhook benchmark on both, alternately.

Machines here differ by several times in speed, and one machine's speed drifts within an hour,
so figures are compared only inside one run: the base commit is checked out beside this one
(a git worktree under var/bench-base/, with its own virtualenv, made once), and
`bench.webhook_load` runs in each tree in turn, round after round, each printing its CPU
calibration. Loopback only; every run is bounded by the benchmark's own limits.

    .venv/bin/python -m bench.compare --base 156714e --rates 100 300 --duration 15 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 900  # seconds for one tree's whole benchmark run


def base_tree(revision: str) -> Path:
    """A worktree of `revision` with its own virtualenv (made on first use)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", revision], cwd=ROOT, check=True, capture_output=True,
        text=True,
    ).stdout.strip()  # fmt: skip
    tree = ROOT / "var" / "bench-base" / commit
    if not (tree / ".git").exists():
        tree.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--force", "--detach", str(tree), commit],
                       cwd=ROOT, check=True)  # fmt: skip
    if not (tree / ".venv" / "bin" / "bot").exists():
        subprocess.run([sys.executable, "-m", "venv", str(tree / ".venv")], check=True)
        subprocess.run([str(tree / ".venv" / "bin" / "pip"), "install", "--quiet", "-e",
                        ".[dev]"], cwd=tree, check=True)  # fmt: skip
    return tree


def run(tree: Path, args: argparse.Namespace) -> tuple[str, list[dict[str, float]]]:
    """One webhook benchmark in `tree`: its calibration line and its results."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "results.json"
        command = [
            str(tree / ".venv" / "bin" / "python"), "-m", "bench.webhook_load",
            "--rates", *map(str, args.rates), "--duration", str(args.duration),
            "--json", str(out),
        ]  # fmt: skip
        done = subprocess.run(
            command, cwd=tree, capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
        if done.returncode != 0:
            raise SystemExit(f"benchmark failed in {tree}:\n{done.stdout}\n{done.stderr}")
        calibration = re.search(r"cpu_calibration_ms=(\S+)", done.stdout)
        return (calibration.group(1) if calibration else "?"), json.loads(out.read_text())


def cpu_ms_per_message(result: dict[str, float]) -> float:
    """Web + worker CPU per answered message, in ms (CPU % over the offered seconds)."""
    cpu_seconds = (result["web_cpu_pct"] + result["worker_cpu_pct"]) / 100 * result["duration"]
    return round(1000 * cpu_seconds / max(1, result["answered"]), 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument("--rates", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    trees = {"base " + args.base: base_tree(args.base), "this commit": ROOT}
    rows = []
    for round_ in range(1, args.rounds + 1):
        for name, tree in trees.items():
            calibration, results = run(tree, args)
            print(f"round {round_} {name}: cpu_calibration_ms={calibration}", flush=True)
            rows += [(round_, name, calibration, r) for r in results]
    print()
    print("| round | tree | calibration ms | offered msg/s | errors | lost | dup | ack p50 ms "
          "| ack p99 ms | e2e p50 ms | e2e p99 ms | web+worker CPU ms/msg |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for round_, name, calibration, r in sorted(rows, key=lambda x: (x[3]["rate"], x[0], x[1])):
        print(
            f"| {round_} | {name} | {calibration} | {r['rate']} | {r['errors']} | {r['lost']} "
            f"| {r['duplicates']} | {r['ack_p50_ms']} | {r['ack_p99_ms']} | {r['e2e_p50_ms']} "
            f"| {r['e2e_p99_ms']} | {cpu_ms_per_message(r)} |"
        )


if __name__ == "__main__":
    main()
