"""Erasure: after a whole conversation, nothing of the person remains anywhere we can look.

The person texts through the signed webhook, a worker takes the tasks from the real queue
(an SQLite file in var/, or Redis beside PostgreSQL), replies go out through the fake Twilio
API and its delivery reports come back; they answer a survey, give feedback, ask a question
that a coordinator turns into an NLU training example (built into build/nlu/nlu.yml), get a
broadcast and a manual reply, appear in an uploaded import file and in saved exports, and
have a simulator thread with the same number. Then they are erased, and every table (all
columns as text), the SQLite file and its WAL, the queue's store and every work folder are
searched for the number (E.164 and national form) and for a phrase only they ever sent.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import redis
from sqlalchemy import Engine, create_engine, inspect, select, text

from bot.broadcasts.audience import Audience
from bot.broadcasts.service import Draft, confirm, create
from bot.core.messages import Channel, Inbound
from bot.db.models import (
    AuditEvent,
    Contact,
    ContactGroup,
    KeptOptOut,
    Message,
    NluExample,
    UnansweredQuestion,
)
from bot.personal_data.erase import erase, phone_forms
from bot.personal_data.export import collect, to_json, write_csv_zip
from bot.surveys import summarize
from dashboard.accounts import Account
from dashboard.handoff import reply_by_hand
from dashboard.nlu_review import decide
from nlu.catalogue import Catalogue
from nlu.training import database_examples, write_training_data
from testkit.fake_twilio import FakeTwilio
from tests.conftest import FAQ_FIXTURE
from tests.personal_data.conftest import REDIS_URL, Service
from tests.support.builders import ACCOUNT_SID
from tests.support.phone import Phone, post_signed

NUMBER = "+9779841234567"
NATIONAL = "9841234567"
PHRASE = "quokka lantern 7731 near the blue culvert"
NEEDLES = [NUMBER, NATIONAL, PHRASE, "quokka", "Quokka"]
COORDINATOR = Account(id=1, email="coord@example.org", name="Coord", role="coordinator")
SURVEY = "community_assessment"


def found_in_tables(engine: Engine, needles: list[str]) -> list[str]:
    """`table.column: needle` for every cell (as text) that contains a needle."""
    hits = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            rows = conn.execute(text(f'SELECT * FROM "{table}"')).mappings()  # noqa: S608
            for row in rows:
                for column, value in row.items():
                    if value is None:
                        continue
                    cell = (
                        value.decode("utf-8", "replace")
                        if isinstance(value, bytes | memoryview)
                        else str(value)
                    )
                    hits += [f"{table}.{column}: {n}" for n in needles if n in cell]
    return hits


def found_in_files(folders: list[Path], needles: list[str]) -> list[str]:
    """`path: needle` for every file (raw bytes, and inside zip or gzip files)."""
    encoded = [n.encode() for n in needles]
    hits = []
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            data = path.read_bytes()
            blobs = [data]
            if data[:4] == b"PK\x03\x04":
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    blobs += [archive.read(name) for name in archive.namelist()]
            elif data[:2] == b"\x1f\x8b":
                blobs.append(gzip.decompress(data))
            hits += [f"{path}: {n.decode()}" for n in encoded for blob in blobs if n in blob]
    return hits


def found_in_redis(needles: list[str]) -> list[str]:
    """`key: needle` for every value in the test Redis database that contains a needle."""
    conn = redis.Redis.from_url(REDIS_URL)
    encoded = [n.encode() for n in needles]
    hits = []
    for key in conn.scan_iter():
        kind = conn.type(key)
        if kind == b"string":
            values = [conn.get(key) or b""]
        elif kind == b"list":
            values = conn.lrange(key, 0, -1)
        elif kind == b"zset":
            values = conn.zrange(key, 0, -1)
        elif kind == b"hash":
            values = [k + v for k, v in conn.hgetall(key).items()]
        elif kind == b"set":
            values = list(conn.smembers(key))
        else:
            values = []
        hits += [f"{key!r}: {n.decode()}" for n in encoded for v in values if n in v]
    conn.close()
    return hits


def sqlite_bytes(database_url: str) -> bytes:
    """The SQLite database file's raw bytes followed by its WAL's."""
    path = Path(database_url.split("///", 1)[1])
    wal = Path(f"{path}-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def converse(service: Service, twilio: FakeTwilio) -> tuple[Phone, Phone]:
    """The person's whole history with the service, and a bystander's shorter one."""
    rt = service.runtime
    person = Phone(service.client, twilio, number=NUMBER)
    other = Phone(service.client, twilio)

    def say(phone: Phone, body: str) -> list[str]:
        phone.send(body)
        service.drain()
        return phone.replies()

    assert say(person, "hi")
    assert say(person, "SURVEY")
    say(person, "7")  # "something else": a free-text question follows
    say(person, f"the {PHRASE} keeps flooding")
    say(person, "1 3")
    say(person, "QUIT")
    assert "What kind of feedback" in say(person, f"FEEDBACK the {PHRASE} is broken")[0]
    say(person, "complaint")
    assert "reference number" in say(person, "Ward 4, by the Quokka bridge")[0]
    say(person, f"where is the {PHRASE}?")  # the fake Rasa: out of scope → review queue
    say(other, "hi")
    say(other, "SURVEY")
    say(other, "1")

    with rt.db.read() as s:
        contact_id = s.scalars(select(Contact.id).where(Contact.phone == NUMBER)).one()
        other_id = s.scalars(select(Contact.id).where(Contact.phone == other.number)).one()
        [item] = s.scalars(
            select(UnansweredQuestion)
            .join(Message, Message.id == UnansweredQuestion.message_id)
            .where(UnansweredQuestion.contact_id == contact_id, Message.body.contains("7731"))
        ).all()
        sid = s.scalars(
            select(Message.provider_sid).where(
                Message.contact_id == contact_id, Message.direction == "out"
            )
        ).first()
    # A coordinator makes the question a training example; the training data is built.
    with rt.db.write() as s:
        decide(s, Catalogue.load(FAQ_FIXTURE), COORDINATOR, item.id, "assigned", "faq_steps")
    examples = database_examples(service.settings.database_url)
    assert any(PHRASE in x for texts in examples.values() for x in texts)
    build = service.settings.var_dir.parent / "build"
    write_training_data(Catalogue.load(FAQ_FIXTURE), build / "nlu", examples)
    write_training_data(
        Catalogue.load(FAQ_FIXTURE), service.settings.var_dir / "nlu/run-3", examples
    )
    # A delivery report, a manual reply (handoff), a broadcast to their group.
    form = {"MessageSid": sid or "", "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID}
    assert post_signed(service.client, "/webhooks/twilio/status", form).status_code == 200
    reply_by_hand(rt, COORDINATOR, contact_id, "A person here: about the quokka, call us", 4)
    service.drain()
    with rt.db.write() as s:
        s.add_all([ContactGroup(contact_id=i, group_name="ward-4") for i in (contact_id, other_id)])
    draft = Draft("Camp", "Camp on Sunday", "आइतबार शिविर", audience=Audience(groups=("ward-4",)))
    broadcast_id = create(rt.broadcasts, draft, created_by="coord@example.org")
    confirm(rt.broadcasts, broadcast_id)
    service.drain()
    # The simulator's thread with the same number.
    rt.accept(
        Inbound(Channel.SMS, NUMBER, "simulated quokka hello", provider_id="SMsimquokka01"),
        simulated=True,
    )
    service.drain()
    # Files: an uploaded import with them and someone else, exports an operator saved.
    imports = service.settings.var_dir / "imports"
    imports.mkdir(parents=True, exist_ok=True)
    (imports / "upload.csv").write_text(
        f"phone,name\n{NUMBER},Quokka person\n{other.number},Someone else\n", encoding="utf-8"
    )
    exports = service.settings.var_dir / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    data = collect(rt.db, NUMBER, rt.clock())
    (exports / "person.json").write_text(to_json(data), encoding="utf-8")
    with (exports / "person.zip").open("wb") as handle:
        write_csv_zip(data, handle)
    assert say(person, "STOP")  # they opted out last
    return person, other


def test_nothing_of_the_person_remains(
    service: Service, twilio: FakeTwilio, database_url: str
) -> None:
    rt = service.runtime
    person, other = converse(service, twilio)
    settings = service.settings
    build = settings.var_dir.parent / "build"
    folders = [settings.var_dir, build]
    engine = create_engine(database_url)
    # The searches find the person before the erasure: they look in the right places.
    assert found_in_tables(engine, NEEDLES)
    assert found_in_files(folders, NEEDLES)
    with rt.db.read() as s:
        before = s.scalar(select(Message.id).order_by(Message.id.desc()).limit(1))
        other_messages = len(
            s.scalars(select(Message.id).join(Contact).where(Contact.phone == other.number)).all()
        )
    assert set(phone_forms(NUMBER)) >= {NUMBER, NATIONAL}
    if rt.db.is_sqlite:
        assert NUMBER.encode() in sqlite_bytes(database_url)

    report = erase(
        rt.db, settings, NUMBER, "admin@example.org", rt.clock(), huey=rt.huey,
        folders=folders, content_dirs=[],
    )  # fmt: skip

    assert len(report.contact_ids) == 2  # the real contact and the simulator's
    assert report.kept_opt_out and report.tallied_responses == 2  # survey and feedback
    assert report.deleted["messages"] > 10 and report.deleted["nlu_examples"] == 1
    assert NUMBER not in "\n".join(report.lines())
    assert found_in_tables(engine, NEEDLES) == []
    assert found_in_files(folders, NEEDLES) == []  # var/ holds the SQLite queue's file
    if rt.db.is_sqlite:
        raw = sqlite_bytes(database_url)
        assert [n for n in NEEDLES if n.encode() in raw] == []
        wal = Path(database_url.split("///", 1)[1] + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0  # checkpointed and truncated
    else:
        assert found_in_redis(NEEDLES) == []

    # Everyone else is untouched; the survey still counts the erased response.
    with rt.db.read() as s:
        kept = len(
            s.scalars(select(Message.id).join(Contact).where(Contact.phone == other.number)).all()
        )
        assert s.scalar(select(NluExample.id)) is None
        [event] = s.scalars(select(AuditEvent).where(AuditEvent.action == "contact_erased"))
        assert s.scalar(select(KeptOptOut.phone_hash)) is not None
    assert kept == other_messages and before
    assert event.detail is not None and event.detail["contact_ids"] == report.contact_ids
    assert event.detail["phone"] == "+97798*****567"
    upload = (settings.var_dir / "imports" / "upload.csv").read_text(encoding="utf-8")
    assert other.number in upload and "phone,name" in upload
    assert not (settings.var_dir / "exports" / "person.json").exists()
    [summary] = summarize(rt.db, SURVEY)
    assert summary.responses == 2 and summary.answers["main_issue"]["other"] == 1
    assert "main_issue_other" not in summary.answers  # free text is never counted

    # The opt-out outlives the person: texting again gets nothing until START.
    assert person.send("hi") == [] and service.drain() and person.replies() == []
    with rt.db.read() as s:
        again = s.scalars(select(Contact).where(Contact.phone == NUMBER)).one()
    assert again.opted_out and again.opted_out_at is not None
    person.send("START")
    service.drain()
    assert person.replies()
    with rt.db.read() as s:
        assert s.scalar(select(KeptOptOut.phone_hash)) is None
        assert not s.scalars(select(Contact.opted_out).where(Contact.phone == NUMBER)).one()
    engine.dispose()
