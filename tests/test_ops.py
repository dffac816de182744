"""Readiness, metrics and structured logs."""

from __future__ import annotations

import json
import logging

import pytest

from bot import logs
from bot.app import create_app
from bot.runtime import Runtime
from tests.support.fake_rasa import FakeRasa
from tests.support.phone import Phone


def test_readyz_reports_each_dependency(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"ready": True, "database": "ok", "queue": "ok", "nlu": "off"}
    assert client.get("/healthz").status_code == 200


def test_readyz_is_503_when_rasa_is_down(nlu_runtime: Runtime, rasa: FakeRasa) -> None:
    client = create_app(nlu_runtime.settings, nlu_runtime).test_client()
    assert client.get("/readyz").get_json()["nlu"] == "ok (1/1 servers)"
    rasa.status = 503
    response = client.get("/readyz")
    assert response.status_code == 503 and response.get_json()["nlu"] == "down"


def test_metrics_count_messages_queue_and_webhook_latency(
    phone: Phone,
    client,  # type: ignore[no-untyped-def]
) -> None:
    phone.send("HELP")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'bot_messages{direction="in",status="processed"} 1.0' in text
    assert 'bot_messages{direction="out",status="queued"} 1.0' in text
    assert "bot_queue_depth 0.0" in text
    assert 'bot_webhook_seconds_count{code="200",endpoint="messages"}' in text
    assert 'bot_inbound_total{channel="sms",duplicate="false"}' in text


def test_json_logs_carry_the_ids_of_the_work(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO", fmt="json", role="worker")
    try:
        with logs.context(sid="SM123", message_id=7):
            logging.getLogger("bot.test").info("handled <script>")
        entry = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    finally:
        logging.getLogger().handlers.clear()
    assert entry["sid"] == "SM123" and entry["message_id"] == 7
    assert entry["message"] == "handled <script>"
    assert entry["role"] == "worker" and entry["level"] == "info"
