"""A channel is a plug-in (issue 11): a provider defined entirely in one new folder, which no
other file names, receives, replies, reports delivery and opts a person out; its settings,
parsed in the same folder, are checked at start like every other setting."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

import bot.channels
from bot.channels import registry
from bot.db.models import ConsentEvent, Contact, Message
from bot.runtime import Runtime
from bot.settings import Settings, SettingsError, load_settings
from testkit.fake_twilio import FakeTwilio
from tests.dashboard.support import add_user, signed_in
from tests.support.builders import new_phone

SETTINGS_PY = '''
"""The pigeons' settings: PIGEON_LOFT enables them, PIGEON_BIRDS (a whole number) and
PIGEON_KEY (a secret) are checked."""

from dataclasses import dataclass, field

from bot.settings_parsing import parse_int, parse_token


@dataclass(frozen=True)
class PigeonSettings:
    loft: str
    birds: int
    key: str | None = field(default=None, repr=False)

    @property
    def pace_per_second(self):
        return self.birds / 60  # each bird flies once a minute


def parse(get):
    loft = get("PIGEON_LOFT")
    if loft is None:
        return None
    return PigeonSettings(
        loft=loft,
        birds=parse_int("PIGEON_BIRDS", get("PIGEON_BIRDS") or "1", 1, 1000),
        key=parse_token("PIGEON_KEY", get("PIGEON_KEY")),
    )
'''

PROVIDER_PY = '''
"""A throwaway provider: carrier pigeons."""

from bot.channels.base import NO_ABILITIES, ErrorMeaning, Provider, SendResult
from bot.channels.pigeon.settings import PigeonSettings
from bot.core.messages import Channel
from bot.core.status import MessageStatus

FLOWN = []  # what the pigeons carried


class Loft:
    def __init__(self, own):
        self.own = own

    def summary(self):
        return f"ok ({self.own.birds} pigeons in {self.own.loft})"


class PigeonChannel:
    abilities = NO_ABILITIES

    def __init__(self, settings):
        self.balance = Loft(settings.provider("pigeon", PigeonSettings))

    def send(self, message):
        FLOWN.append(message)
        return SendResult(provider_id=f"pigeon-{len(FLOWN)}", status=MessageStatus.SENT)

    async def send_async(self, message):
        return self.send(message)

    def find_sent(self, message, since):
        return []

    async def aclose(self):
        return None


PROVIDER = Provider(
    name="pigeon",
    channels=(Channel.SMS,),
    enabled=lambda settings: settings.provider("pigeon", PigeonSettings) is not None,
    make_senders=lambda settings: {Channel.SMS: PigeonChannel(settings)},
    webhook="bot.channels.pigeon.webhook:bp",
    statuses={"landed": MessageStatus.DELIVERED},
    errors=lambda code: ErrorMeaning.OPTED_OUT if code == 7 else None,
    secret_settings=frozenset({"public_url"}),
)
'''

WEBHOOK_PY = """
from flask import Blueprint, Response, current_app, request

from bot.channels.pigeon.provider import PROVIDER
from bot.core.messages import Channel, Inbound
from webhooks.inbound import store

bp = Blueprint("pigeon_webhooks", __name__, url_prefix="/webhooks/pigeon")


@bp.post("/inbound")
def inbound():
    form = request.form
    store(Inbound(channel=Channel.SMS, sender=form["from"], body=form["text"],
                  provider_id="pigeon:" + form["id"], route=PROVIDER.name))
    return Response("", 200)


@bp.post("/status")
def status():
    code = int(request.form["code"]) if request.form.get("code") else None
    outcome = current_app.extensions["bot"].outbox.apply_status(
        request.form["id"], PROVIDER.status(request.form["status"]), code,
        PROVIDER.meaning(code), provider=PROVIDER.name)
    return Response(outcome, 200)
"""


PIGEON_SETTINGS = {
    "PIGEON_LOFT": "rooftop",
    "PIGEON_BIRDS": "12",
    "PIGEON_KEY": "pigeon-secret-0123456789",
}


def _forget_pigeon() -> None:
    for name in [m for m in sys.modules if m.startswith("bot.channels.pigeon")]:
        del sys.modules[name]
    registry.providers.cache_clear()


@pytest.fixture
def settings_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Installs bot/channels/pigeon/ (in a directory of its own) before the service starts."""
    folder = tmp_path / "plugins" / "pigeon"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text('"""Carrier pigeons."""\n')
    (folder / "provider.py").write_text(textwrap.dedent(PROVIDER_PY))
    (folder / "settings.py").write_text(textwrap.dedent(SETTINGS_PY))
    (folder / "webhook.py").write_text(textwrap.dedent(WEBHOOK_PY))
    monkeypatch.setattr(bot.channels, "__path__", [*bot.channels.__path__, str(folder.parent)])
    _forget_pigeon()
    yield dict(PIGEON_SETTINGS)
    monkeypatch.undo()
    _forget_pigeon()


def test_a_provider_in_one_new_folder_is_a_channel(
    client, runtime: Runtime, twilio: FakeTwilio
) -> None:  # type: ignore[no-untyped-def]
    assert "pigeon" in [p.name for p in registry.providers()]
    flown = sys.modules["bot.channels.pigeon.provider"].FLOWN
    number = new_phone()

    # Its webhook is mounted and exempt from the dashboard's CSRF check (no token sent).
    response = client.post(
        "/webhooks/pigeon/inbound", data={"from": number, "text": "HELP", "id": "1"}
    )
    assert response.status_code == 200, response.data
    # The reply goes back through the provider the person wrote through, not Twilio.
    [reply] = flown
    assert reply.to == number and "STOP" in reply.body
    assert twilio.calls == []
    with runtime.db.read() as s:
        contact = s.scalars(select(Contact)).one()
        out = s.scalars(select(Message).where(Message.direction == "out")).one()
    assert (contact.last_provider, out.provider, out.provider_sid) == (
        "pigeon",
        "pigeon",
        "pigeon-1",
    )

    # Its status words and error codes are its own, mapped by its Provider.
    landed = client.post("/webhooks/pigeon/status", data={"id": "pigeon-1", "status": "landed"})
    assert landed.data == b"applied"
    client.post("/webhooks/pigeon/status", data={"id": "pigeon-1", "status": "lost", "code": "7"})
    with runtime.db.read() as s:
        out = s.scalars(select(Message).where(Message.direction == "out")).one()
        contact = s.scalars(select(Contact)).one()
        consent = s.scalars(select(ConsentEvent)).one()
    assert out.status == "delivered"
    assert contact.opted_out
    assert consent.reason == "pigeon_7"


def test_its_balance_and_secret_settings_are_shown(app, client, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    balance = "ok (12 pigeons in rooftop)"  # from its own settings
    assert client.get("/readyz").get_json()["pigeon_balance"] == balance
    admin = add_user(runtime.db, "admin@example.org", "admin", "x")
    page = signed_in(app, runtime.db, admin).get("/dashboard/settings").get_data(as_text=True)
    assert f"<th>pigeon</th><td>{balance}</td>" in page
    assert "<th>public_url</th><td>(set)</td>" in page
    # Its own settings are listed as pigeon_<field>, the one kept out of their repr masked.
    assert "<th>pigeon_loft</th><td>rooftop</td>" in page
    assert "<th>pigeon_key</th><td>(set)</td>" in page
    assert "pigeon-secret-0123456789" not in page


def test_its_settings_are_parsed_from_the_environment_with_the_others(
    runtime: Runtime, env: dict[str, str], settings_overrides: dict[str, str]
) -> None:
    own = runtime.settings.providers["pigeon"]
    assert (own.loft, own.birds, own.key) == ("rooftop", 12, "pigeon-secret-0123456789")  # type: ignore[attr-defined]
    assert "pigeon-secret" not in repr(runtime.settings)
    # Its route is paced by its own settings (12 birds, once a minute each) unless
    # BROADCAST_PACE says otherwise.
    assert runtime.settings.pace_for("sms", "sms:pigeon", "pigeon") == pytest.approx(0.2)
    paced = Settings.from_mapping(env | settings_overrides | {"BROADCAST_PACE": "sms:pigeon=3"})
    assert paced.pace_for("sms", "sms:pigeon", "pigeon") == 3.0
    # Unset, the provider is not configured (and not enabled); nothing else changes.
    bare = Settings.from_mapping(env)
    assert bare.providers["pigeon"] is None
    assert "pigeon" not in [p.name for p in registry.enabled(bare)]


@pytest.mark.parametrize(
    ("name", "value"), [("PIGEON_BIRDS", "many"), ("PIGEON_BIRDS", "0"), ("PIGEON_KEY", "short")]
)
def test_a_bad_value_of_its_settings_stops_start_up_and_is_named(
    env: dict[str, str], settings_overrides: dict[str, str], name: str, value: str
) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings(env | settings_overrides | {name: value}, dotenv=Path("/nonexistent"))
