"""This commit against a base commit, in one run: the webhook benchmark on both, alternately.

Machines here differ by several times in speed, and one machine's speed drifts within an hour,
so figures are compared only inside one run: the base commit is checked out beside this one
(a git worktree under var/bench-base/, with its own virtualenv, made once), and
`bench.webhook_load` runs in each tree in turn, round after round, each printing its CPU
calibration. The order swaps every round (the base first in odd rounds, this tree in even
ones), so that a machine slowing down or speeding up over the run favours neither tree.
Loopback only; every run is bounded by the benchmark's own limits.

    .venv/bin/python -m bench.compare --base 156714e --rates 100 300 --duration 15 --rounds 2

`--bench run` compares what `make run` starts instead (bench/run_load.py: `bot run` with the
real Rasa, FAQ questions): this tree's harness drives each tree's service in turn, and the
table adds the start (seconds until a webhook is accepted), CPU ms per message of each
process, and this tree's total against the base's in the same round and at the same rate
("vs base"); after it, per round, the highest rate each tree kept up with (0 errors, none
lost, e2e p99 < 1 s there and at every lower rate), and per rate the median CPU change.
The base tree gets links to this tree's `.venv-rasa`; both use one copy of the model taken
at the start (var/bench-model/), so a retrain meanwhile changes neither.

    .venv/bin/python -m bench.compare --bench run --base 2a8e744 --rates 50 100 300 --rounds 2

With `--channels twilio sparrow android` (`--bench run` only) each tree's service is driven
through each channel (bench/run_load.py --channels); the table's tree column names the
channel too. A base tree without a channel's provider fails its run.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from bench.channels import NAMES as CHANNELS

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


def run_service(tree: Path, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """One bench.run_load run of `tree`'s service by this tree's harness."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "results.json"
        command = [
            sys.executable, "-m", "bench.run_load", "--tree", str(tree),
            "--rates", *map(str, args.rates), "--duration", str(args.duration),
            "--json", str(out),
        ]  # fmt: skip
        if args.channels:
            command += ["--channels", *args.channels]
        if args.prod:
            command.append("--prod")
        timeout = RUN_TIMEOUT * len(args.channels or [None])  # one run per channel
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise SystemExit(f"benchmark failed in {tree}:\n{done.stdout}\n{done.stderr}")
        calibration = re.search(r"cpu_calibration_ms=(\S+)", done.stdout)
        return (calibration.group(1) if calibration else "?"), json.loads(out.read_text())


def same_model(tree: Path, model: Path) -> None:
    """Points `tree` at this tree's Rasa and at one copy of the model for the whole run."""
    rasa = tree / ".venv-rasa"
    if tree != ROOT and not rasa.exists():
        rasa.symlink_to(ROOT / ".venv-rasa")
    target = tree / "models" / "nlu.tar.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        target.unlink()
    shutil.copyfile(model, target)


def in_turn(trees: dict[str, Path], round_: int) -> list[tuple[str, Path]]:
    """The trees in the order they run in `round_`: as given in odd rounds, reversed in even
    ones (a drift of the machine's speed over the run then favours neither)."""
    order = list(trees.items())
    return order if round_ % 2 else order[::-1]


def compare_services(args: argparse.Namespace, trees: dict[str, Path]) -> None:
    """`--bench run`: each tree's `bot run` in turn, one table."""
    model = ROOT / "var" / "bench-model" / "nlu.tar.gz"
    model.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "models" / "nlu.tar.gz", model)
    rows: list[ServiceRow] = []
    for round_ in range(1, args.rounds + 1):
        for name, tree in in_turn(trees, round_):
            if tree != ROOT:
                same_model(tree, model)
            calibration, result = run_service(tree, args)
            # One channel (Twilio) is written as before; several as a list, one per channel.
            for run in result.get("channels") or [result]:
                channel = run.get("channel", "twilio") if args.channels else ""
                label = f"{name} ({channel})" if channel else name
                start = run["start"]
                print(
                    f"round {round_} {label}: cpu_calibration_ms={calibration} accepted after "
                    f"{start['accepted_s']} s, answered after {start['answered_s']} s",
                    flush=True,
                )
                base = name == next(iter(trees))
                rows += [
                    ServiceRow(round_, label, channel, base, calibration, start, r)
                    for r in run["phases"]
                ]
    print()
    print("\n".join(service_table(rows, args.prod)))


class ServiceRow(NamedTuple):
    """One tree's figures at one rate in one round of `--bench run`."""

    round: int
    label: str
    channel: str
    base: bool
    calibration: str
    start: dict[str, Any]
    phase: dict[str, Any]

    def cpu_parts(self) -> list[float]:
        """CPU ms per message: web, workers, NLU, scheduler (and with --prod the PostgreSQL
        and Redis servers, which work for the service on the same cores)."""
        cpu = self.phase["cpu_ms"]
        parts = [cpu.get("web", 0.0), sum(v for k, v in cpu.items() if k.startswith("worker")),
                 sum(v for k, v in cpu.items() if k.startswith("rasa")),
                 sum(v for k, v in cpu.items() if k.startswith("scheduler"))]  # fmt: skip
        return parts + [cpu[server] for server in ("postgres", "redis") if server in cpu]


SUSTAINED = "0 errors, none lost, e2e p99 < 1 s at that rate and every lower one offered"


def kept_up(phase: dict[str, Any]) -> bool:
    """The service kept up with this phase's rate: every webhook accepted, every message
    answered, e2e p99 under a second."""
    return phase["errors"] == 0 and phase["lost"] == 0 and phase["e2e_p99_ms"] < 1000


def sustained(rows: list[ServiceRow]) -> dict[tuple[str, int], list[tuple[str, int]]]:
    """Per channel and round, each tree (the base first) with the highest offered rate it
    kept up with at that rate and every lower one (0: not even the lowest)."""
    runs: dict[tuple[str, int], dict[str, list[dict[str, Any]]]] = {}
    for row in sorted(rows, key=lambda row: (not row.base, row.phase["rate"])):
        runs.setdefault((row.channel, row.round), {}).setdefault(row.label, []).append(row.phase)
    return {key: [(label, highest_kept_up(phases)) for label, phases in trees.items()]
            for key, trees in runs.items()}  # fmt: skip


def highest_kept_up(phases: list[dict[str, Any]]) -> int:
    """The highest rate of `phases` (lowest rate first) before the first one not kept up
    with; 0 if that is the first."""
    best = 0
    for phase in phases:
        if not kept_up(phase):
            break
        best = phase["rate"]
    return best


def service_table(rows: list[ServiceRow], prod: bool = False) -> list[str]:
    """The `--bench run` table (rates, then rounds, then channels, the base first), each row
    of this tree with its total CPU per message against the base's of the same round, rate
    and channel; then per round the highest rate each tree kept up with, and per rate (and
    channel) the median of the CPU changes."""
    key = lambda row: (row.channel, row.phase["rate"], row.round)  # noqa: E731
    base_total = {key(row): sum(row.cpu_parts()) for row in rows if row.base}
    lines = [
        "| round | tree | calibration ms | start: accepted / answered s | offered msg/s "
        "| achieved | errors | lost | dup | out of order | ack p50 ms | ack p99 ms "
        "| e2e p50 ms | e2e p99 ms | drain s | CPU ms/msg web / worker / Rasa / scheduler"
        f"{' / PostgreSQL / Redis' if prod else ''} "
        "| CPU ms/msg total | vs base | others' CPU % |",
        "|---" * 19 + "|",
    ]
    changes: dict[tuple[str, int], list[float]] = {}
    # Each channel's base row right above this tree's (--channels runs several per tree).
    ordered = sorted(rows, key=lambda r: (r.phase["rate"], r.round, r.channel, not r.base))
    for row in ordered:
        r, start, parts = row.phase, row.start, row.cpu_parts()
        total = sum(parts)
        versus = ""
        if not row.base and base_total.get(key(row)):
            change = 100 * (total / base_total[key(row)] - 1)
            changes.setdefault((row.channel, r["rate"]), []).append(change)
            versus = f"{change:+.0f} %"
        lines.append(
            f"| {row.round} | {row.label} | {row.calibration} | {start['accepted_s']} / "
            f"{start['answered_s']} | {r['rate']} | {r['achieved_rate']} | {r['errors']} "
            f"| {r['lost']} | {r['duplicates']} | {r['out_of_order']} | {r['ack_p50_ms']} "
            f"| {r['ack_p99_ms']} | {r['e2e_p50_ms']} | {r['e2e_p99_ms']} | {r['drain_s']} "
            f"| {' / '.join(f'{p:.2f}' for p in parts)} | {total:.2f} | {versus} "
            f"| {r['others_cpu_pct']} |"
        )
    lines.append("")
    for (channel, round_), held in sorted(sustained(rows).items()):
        where = f"{channel}, round {round_}" if channel else f"round {round_}"
        each = ", ".join(f"{label} {rate or 'none'}" for label, rate in held)
        lines.append(f"Highest rate kept up with, msg/s ({SUSTAINED}), {where}: {each}")
    for (channel, rate), found in sorted(changes.items()):
        each = ", ".join(f"{c:+.0f} %" for c in found)
        where = f"{channel} at {rate}" if channel else f"{rate}"
        lines.append(
            f"CPU per message against the base, {where} msg/s: median "
            f"{statistics.median(found):+.0f} % ({each})"
        )
    return lines


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
    parser.add_argument("--bench", choices=["webhook", "run"], default="webhook",
                        help="webhook: bench.webhook_load; run: `bot run` with Rasa")  # fmt: skip
    parser.add_argument("--tree", type=Path, default=ROOT, help="the tree to compare (this)")
    parser.add_argument("--channels", choices=CHANNELS, nargs="+",
                        help="--bench run: the channels to drive (default Twilio)")  # fmt: skip
    parser.add_argument(
        "--prod",
        action="store_true",
        help="--bench run: what `make run-prod` starts (PostgreSQL, Redis)",
    )
    args = parser.parse_args()
    if (args.channels or args.prod) and args.bench != "run":
        parser.error("--channels and --prod need --bench run")
    trees = {"base " + args.base: base_tree(args.base), "this commit": args.tree.resolve()}
    if args.bench == "run":
        compare_services(args, trees)
        return
    rows = []
    for round_ in range(1, args.rounds + 1):
        for name, tree in in_turn(trees, round_):
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
