"""Paces hold across processes without Redis (bot/db/pace_store.py): `bot run` starts two
workers, and both send through the same sender numbers and Android phones."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from limits import RateLimitItemPerSecond
from limits.strategies import MovingWindowRateLimiter

from bot.db.pace_store import PACE_FILE, SharedFileStorage, pace_storage

ROOT = Path(__file__).resolve().parent.parent


def test_two_storages_on_one_file_draw_from_one_budget(tmp_path: Path) -> None:
    first = MovingWindowRateLimiter(SharedFileStorage(tmp_path / PACE_FILE))
    second = MovingWindowRateLimiter(SharedFileStorage(tmp_path / PACE_FILE))
    item = RateLimitItemPerSecond(5, 60)  # 5 units a minute
    assert all(first.hit(item, "ns", "+9779800000001") for _ in range(3))
    assert second.hit(item, "ns", "+9779800000001", cost=2)
    assert not second.hit(item, "ns", "+9779800000001")  # the other "process" spent the rest
    assert not first.hit(item, "ns", "+9779800000001")
    assert first.hit(item, "ns", "+9779800000002")  # another sender has its own budget
    stats = second.get_window_stats(item, "ns", "+9779800000001")
    assert stats.remaining == 0 and time.time() < stats.reset_time <= time.time() + 60
    assert not first.hit(item, "ns", "+9779800000003", cost=6)  # more than the window holds


def test_the_fixed_window_counters_work_too(tmp_path: Path) -> None:
    storage = SharedFileStorage(tmp_path / PACE_FILE)
    assert storage.incr("k", 60) == 1 and storage.incr("k", 60, amount=2) == 3
    assert storage.get("k") == 3 and storage.get_expiry("k") > time.time()
    storage.clear("k")
    assert storage.get("k") == 0 and storage.check()
    assert storage.reset() == 0


def test_which_storage(tmp_path: Path) -> None:
    assert isinstance(pace_storage(None, tmp_path), SharedFileStorage)
    assert not isinstance(pace_storage(None, None), SharedFileStorage)  # memory: tests


PACING = """
import sys, time
from pathlib import Path
from bot.broadcasts.pacing import Pacer
pacer = Pacer(var_dir=Path(sys.argv[1]), sleep=time.sleep)
print("ready", flush=True)
sys.stdin.readline()  # both start together
start, got = time.monotonic(), 0
while time.monotonic() < start + 1.5:
    if pacer.acquire("+9779800000009", 20.0, 1, deadline=time.monotonic() + 0.5): got += 1
print(got, flush=True)
"""


def _run_two(dirs: list[Path]) -> list[int]:
    """Two processes pacing one sender at 20 a second, each with its pace file in its
    directory, started together; how many units each got in 1.5 s."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", PACING, str(directory)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for directory in dirs
    ]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    return [int(p.communicate(timeout=30)[0].strip()) for p in processes]


def test_two_processes_together_keep_one_pace(tmp_path: Path) -> None:
    """Two processes sending as fast as a pace of 20 a second lets them, for 1.5 s: together
    what one window and 1.5 s of pace allow (40; at most 50), not each of them (80), which is
    what they get with a file each, as with a budget in each process's memory."""
    shared = _run_two([tmp_path, tmp_path])
    assert 20 <= sum(shared) <= 50, shared
    apart = _run_two([tmp_path / "a", tmp_path / "b"])
    assert sum(apart) > 60, apart


def test_the_storage_is_found_by_its_scheme(tmp_path: Path) -> None:
    from limits.storage import storage_from_string

    storage = storage_from_string(f"bot-pace-file://{tmp_path / PACE_FILE}")
    assert isinstance(storage, SharedFileStorage) and storage.path == tmp_path / PACE_FILE
