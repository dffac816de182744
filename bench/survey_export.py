"""Survey results export: time and peak memory for N responses (constant memory claim).

Seeds a fresh SQLite database (or the one at --database-url) with N synthetic responses to
the shipped assessment survey, then runs `bot survey results` in a child process for each N
and reports its wall time and peak RSS. Constant memory means the peak hardly moves as N
grows tenfold. Loopback/local files only; bounded by N.

    .venv/bin/python -m bench.survey_export --sizes 10000 100000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from bot.db.database import Database
from bot.db.migrate import upgrade
from bot.db.models import Contact, SurveyResponse
from bot.surveys import sync_versions
from flows.schema import FlowFiles

ROOT = Path(__file__).resolve().parent.parent


def seed(url: str, count: int) -> None:
    upgrade(url)
    db = Database(url)
    sync_versions(db, FlowFiles.load())
    rng = random.Random(42)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    issues = ["water", "roads", "health", "education", "livelihood", "disaster", "other"]
    batch = 5000
    with db.begin() as conn:
        conn.execute(
            insert(Contact),
            [
                {
                    "phone": f"+97798{n:08d}",
                    "simulated": False,
                    "channel": "sms",
                    "has_sms": True,
                    "has_whatsapp": False,
                    "opted_out": False,
                    "version": 0,
                    "created_at": start,
                    "updated_at": start,
                }
                for n in range(count)
            ],
        )
    for first in range(0, count, batch):
        rows = []
        for n in range(first, min(first + batch, count)):
            when = start + timedelta(minutes=n)
            issue = rng.choice(issues)
            answers: dict[str, object] = {
                "main_issue": issue,
                "priorities": sorted(rng.sample(["water", "roads", "health"], 2)),
                "has_groups": rng.choice(["yes", "no"]),
            }
            if issue == "other":
                answers["main_issue_other"] = '=HYPERLINK("x") no street lights ' * 3
            rows.append(
                {
                    "session_id": f"{n:032x}",
                    "survey_key": "community_assessment",
                    "kind": "survey",
                    "version": "1",
                    "contact_id": n + 1,
                    "channel": "sms",
                    "language": rng.choice(["en", "ne"]),
                    "status": rng.choice(["completed", "completed", "active", "quit"]),
                    "answers": answers,
                    "skipped": None,
                    "started_at": when,
                    "updated_at": when,
                    "completed_at": when,
                }
            )
        with db.begin() as conn:
            conn.execute(insert(SurveyResponse), rows)
    db.dispose()


def export(url: str, out: Path) -> dict[str, float]:
    """Runs the CLI export in a child process; returns its wall time and peak RSS."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from the (seeding) parent.
    script = (
        "import re, sys, time\n"
        "from bot.cli import main\n"
        "t = time.perf_counter()\n"
        "try:\n"
        f"    main(['survey', 'results', 'community_assessment', '--csv', {str(out)!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
        "print('RESULT', time.perf_counter() - t, hwm, file=sys.stderr)\n"
    )
    env = os.environ | {"DATABASE_URL": url, "VAR_DIR": str(out.parent / "var")}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("RESULT"))
    _, seconds, max_rss_kb = line.split()
    rows = sum(1 for _ in out.open(encoding="utf-8")) - 1
    return {"rows": rows, "seconds": float(seconds), "peak_rss_mb": int(max_rss_kb) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            url = f"sqlite:///{tmp}/export-{size}.db"
            t0 = time.perf_counter()
            seed(url, size)
            seeded = time.perf_counter() - t0
            figures = export(url, Path(tmp) / f"results-{size}.csv")
            figures |= {"responses": size, "seed_seconds": round(seeded, 1)}
            results.append(figures)
            print(
                f"{size:>8} responses: export {figures['seconds']:.1f} s "
                f"({size / figures['seconds']:,.0f} rows/s), peak RSS "
                f"{figures['peak_rss_mb']:.0f} MB, {figures['rows']} rows written",
                flush=True,
            )
    if len(results) > 1:
        growth = results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"]
        print(f"peak memory x{growth:.2f} for x{args.sizes[-1] / args.sizes[0]:.0f} responses")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
