"""The pieces of erasure outside the database: queued tasks and work-folder files."""

from __future__ import annotations

import json
import uuid
import zipfile
from pathlib import Path

import pytest
from huey import Huey

from bot.personal_data.files import live_files, mentions, scrub_folders
from bot.personal_data.jobs import purge_tasks
from bot.queue import make_huey
from bot.settings import Settings
from tests.personal_data.conftest import REDIS_URL

NUMBER = "+9779841234567"


@pytest.fixture(params=["sqlite", "redis", "memory"])
def huey(request: pytest.FixtureRequest, tmp_path: Path) -> Huey:
    extra = {
        "QUEUE_NAME": f"purge-{uuid.uuid4().hex[:8]}",
        "VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "test-secret-key-0123456789",
    }
    if request.param == "redis":
        extra["REDIS_URL"] = REDIS_URL
    settings = Settings.from_mapping(extra)
    if request.param == "memory":
        from huey import MemoryHuey

        return MemoryHuey(settings.queue_name, results=False, utc=True)
    return make_huey(settings)


def test_purge_removes_waiting_and_scheduled_tasks_of_the_person_only(huey: Huey) -> None:
    calls: list[tuple[str, int]] = []
    process = huey.task(name="process_contact")(lambda cid: calls.append(("c", cid)))
    retry = huey.task(name="send_retry")(lambda mid: calls.append(("m", mid)))
    plan = huey.task(name="broadcast_plan")(lambda rid: calls.append(("r", rid)))
    process(5)
    process(6)
    retry(70)
    retry(71)
    plan(5)  # a run id that happens to equal the contact id: not theirs
    retry.schedule((70,), delay=3600)
    try:
        assert purge_tasks(huey, {5}, {70}) >= 2
        left = [huey.serializer.deserialize(bytes(d)) for d in huey.storage.enqueued_items()]
        left += [huey.serializer.deserialize(bytes(d)) for d in huey.storage.scheduled_items()]
        kept = sorted((m.name.rsplit(".", 1)[-1], m.args[0]) for m in left)
        assert kept == [("broadcast_plan", 5), ("process_contact", 6), ("send_retry", 71)]
        assert purge_tasks(huey, {5}, {70}) == 0
    finally:
        huey.storage.flush_all()


def test_scrub_removes_their_lines_and_files_and_leaves_the_rest(tmp_path: Path) -> None:
    var, build, data = tmp_path / "var", tmp_path / "build", tmp_path / "data"
    for folder in (var / "imports", var / "exports", build / "nlu", data):
        folder.mkdir(parents=True)
    upload = var / "imports" / "a.csv"
    upload.write_text(f"phone,name\n{NUMBER},Them\n+9779800000002,Someone\n", encoding="utf-8")
    upload.chmod(0o600)
    nlu = build / "nlu" / "nlu.yml"
    nlu.write_text(
        "nlu:\n- intent: faq_steps\n  examples: |\n    - how do i join\n"
        "    - where is the quokka lantern\n    - quokka\n",
        encoding="utf-8",
    )
    (var / "exports" / "them.json").write_text(json.dumps({"x": 1, "phone": NUMBER}, indent=2))
    with zipfile.ZipFile(var / "exports" / "them.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("contacts.csv", f"phone\n{NUMBER}\n")
    (var / "blob.bin").write_bytes(b"\x00\xff" + b"9841234567" + b"\x00")
    (var / "other.bin").write_bytes(b"\x00\xff nothing \x00")
    (var / "only_them.txt").write_text(f"{NUMBER}\n\n", encoding="utf-8")
    database = var / "bot.db"
    database.write_bytes(b"SQLite format 3\x00" + NUMBER.encode())  # the live one: skipped
    (data / "faq.yml").write_text("examples:\n  - where is the quokka lantern\n")

    result = scrub_folders(
        [var, build, tmp_path / "missing"],
        [NUMBER, "9841234567"],
        ["where is the  quokka lantern"],  # as stored: whitespace normalized
        live_files([database]),
    )

    assert sorted(p.name for p in result.changed) == ["a.csv", "nlu.yml"]
    removed = sorted(p.name for p in result.removed)
    assert removed == ["blob.bin", "only_them.txt", "them.json", "them.zip"]
    assert upload.read_text() == "phone,name\n+9779800000002,Someone\n"
    assert upload.stat().st_mode & 0o777 == 0o600
    assert nlu.read_text().endswith("    - how do i join\n    - quokka\n")  # only whole lines
    assert (var / "other.bin").exists() and NUMBER.encode() in database.read_bytes()
    assert mentions([data], ["where is the quokka lantern"]) == [data / "faq.yml"]
    assert mentions([data], ["quokka"]) == []
