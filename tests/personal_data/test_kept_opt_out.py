"""An erased person who had opted out stays opted out: texting, imports, broadcasts."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import select

from bot.app import create_app
from bot.broadcasts.audience import Audience
from bot.broadcasts.service import Draft, confirm, create
from bot.cli import main
from bot.db.models import ConsentEvent, Contact, ContactGroup, KeptOptOut, Message
from bot.personal_data.optouts import phone_hash
from bot.runtime import Runtime
from dashboard.contacts_import import read_rows, save
from testkit.fake_twilio import FakeTwilio
from tests.support.phone import Phone


def test_erased_opt_out_is_kept_by_hash_and_honoured_everywhere(
    unpaced_runtime: Runtime, twilio: FakeTwilio, env: dict[str, str]
) -> None:
    rt = unpaced_runtime
    client = create_app(rt.settings, rt).test_client()
    person = Phone(client, twilio)
    person.send("hi")
    assert person.send("STOP")
    runner = CliRunner()
    refused = runner.invoke(main, ["contacts", "erase", person.number], env=env)
    assert refused.exit_code == 1 and "--yes" in refused.output
    national = person.number.removeprefix("+977")
    erased = runner.invoke(main, ["contacts", "erase", national, "--yes", "--by", "dpo"], env=env)
    assert erased.exit_code == 0, erased.output
    assert "opt-out kept" in erased.output and person.number not in erased.output
    with rt.db.read() as s:
        assert s.scalar(select(Contact.id)) is None
        [kept] = s.scalars(select(KeptOptOut.phone_hash)).all()
    assert kept == phone_hash(rt.settings.phone_key, person.number)
    assert kept != phone_hash(b"another-key-0123456789", person.number)  # keyed

    # A file imports the number again: it comes in opted out, the others opted in.
    other = "+9779800077777"
    rows, bad = read_rows(
        f"phone,groups\n{person.number},ward-7\n{other},ward-7\n".encode(), "NP", "sms"
    )
    assert not bad and save(rt.db, rows, phone_key=rt.settings.phone_key) == (2, 0)
    with rt.db.read() as s:
        consent = dict(
            s.execute(
                select(Contact.phone, ConsentEvent.reason).join(
                    ConsentEvent, ConsentEvent.contact_id == Contact.id
                )
            ).all()
        )
        opted = dict(s.execute(select(Contact.phone, Contact.opted_out)).all())
        assert s.scalar(select(ContactGroup.contact_id).limit(1)) is not None
    assert consent == {person.number: "opt_out_kept", other: "import"}
    assert opted == {person.number: True, other: False}

    # A broadcast to their group reaches the other person only.
    draft = Draft("Camp", "Camp on Sunday", "आइतबार शिविर", audience=Audience(groups=("ward-7",)))
    confirm(rt.broadcasts, create(rt.broadcasts, draft, created_by="coord@example.org"))
    assert [c.form["To"] for c in twilio.sent if c.form["Body"] == "Camp on Sunday"] == [other]
    with rt.db.read() as s:
        skipped = s.execute(
            select(Message.status, Message.error_message)
            .join(Contact)
            .where(Contact.phone == person.number, Message.kind == "broadcast")
        ).one()
    assert tuple(skipped) == ("skipped", "opted_out")

    # Texting gets nothing back; START subscribes them and forgets the hash.
    assert person.send("hello again") == []
    assert person.send("START")
    with rt.db.read() as s:
        assert s.scalar(select(KeptOptOut.phone_hash)) is None
        assert not s.scalars(select(Contact.opted_out).where(Contact.phone == person.number)).one()
