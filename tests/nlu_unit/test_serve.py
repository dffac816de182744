"""nlu/serve.py: the NLU server `bot run` starts, speaking `rasa run`'s parse API.

The HTTP side runs here with a stand-in model (the server imports Rasa only to load a real
one); the real model's answers are compared with Rasa's own agent in Rasa's virtualenv when
it is installed (`make train`).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import processes
from nlu.client import RasaClient
from nlu.serve import MAX_BODY, serve
from tests.support.required import require_shipped_model

TOKEN = "serve-token-0123456789"


class StandInModel:
    """Answers every text with intent "echo"; each batch takes `delay` s, as a parse does."""

    version = "3.6.21"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.batches: list[list[str]] = []

    async def parse(self, texts: list[str]) -> list[dict[str, Any]]:
        self.batches.append(list(texts))
        time.sleep(self.delay)  # CPU work blocks the loop, as the real model's does
        if "boom" in texts:
            raise RuntimeError("the model failed")
        return [
            {
                "text": text,
                "intent": {"name": "faq_meaning", "confidence": 0.9},
                "entities": [],
                "intent_ranking": [{"name": "faq_meaning", "confidence": 0.9}],
            }
            for text in texts
        ]


@contextlib.contextmanager
def running(model: StandInModel) -> Iterator[int]:
    """`serve` on a loop of its own, in a thread; stopped (its loop closed) on leaving."""
    ports: list[int] = []
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    stopping = asyncio.Event()

    def started(port: int) -> None:
        ports.append(port)
        ready.set()

    thread = threading.Thread(
        target=loop.run_until_complete,
        args=(serve(model, "127.0.0.1", 0, TOKEN, stopping=stopping, started=started),),
        daemon=True,
    )
    thread.start()
    assert ready.wait(10)
    try:
        yield ports[0]
    finally:
        loop.call_soon_threadsafe(stopping.set)
        thread.join(10)
        assert not thread.is_alive(), "serve did not return once stopping was set"
        loop.close()


@pytest.fixture
def server() -> Iterator[tuple[int, StandInModel]]:
    model = StandInModel(delay=0.02)
    with running(model) as port:
        yield port, model


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_answers_the_status_page_and_parses_with_the_token(
    server: tuple[int, StandInModel],
) -> None:
    port, _ = server
    assert request(port, "GET", "/") == (200, b"Hello from Rasa: 3.6.21")
    status, body = request(port, "POST", f"/model/parse?token={TOKEN}", b'{"text": "k ho"}')
    assert status == 200
    assert json.loads(body)["text"] == "k ho"
    # The service's own client reads it as it reads `rasa run`.
    client = RasaClient([f"http://127.0.0.1:{port}"], token=TOKEN)
    understood = client.parse("what is social mobilization")
    assert understood.intent == "faq_meaning" and understood.confidence == 0.9


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/model/parse", b'{"text": "x"}', 401),  # no token
        ("POST", "/model/parse?token=wrong", b'{"text": "x"}', 401),
        ("POST", f"/model/parse?token={TOKEN}", b"not json", 400),
        ("POST", f"/model/parse?token={TOKEN}", b'{"txt": "x"}', 400),
        ("POST", f"/model/parse?token={TOKEN}", b'{"text": 5}', 400),
        ("POST", f"/model/parse?token={TOKEN}", b'["text"]', 400),
        ("GET", f"/model/parse?token={TOKEN}", None, 405),
        ("PUT", f"/model?token={TOKEN}", b"{}", 404),  # no model replacement over HTTP
        ("POST", f"/model/parse?token={TOKEN}", b'{"text": "' + b"a" * MAX_BODY + b'"}', 413),
    ],
)
def test_refuses_what_it_does_not_serve_with_a_4xx(
    server: tuple[int, StandInModel], method: str, path: str, body: bytes | None, status: int
) -> None:
    port, model = server
    answered, _ = request(port, method, path, body)
    assert answered == status
    assert model.batches == []  # nothing reached the model


def test_a_malformed_request_is_400_and_the_server_goes_on(
    server: tuple[int, StandInModel],
) -> None:
    port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"NONSENSE\r\n\r\n")
        assert raw.recv(1024).startswith(b"HTTP/1.1 400")
    assert request(port, "GET", "/")[0] == 200


def test_a_failing_parse_is_500_for_its_request_only(server: tuple[int, StandInModel]) -> None:
    port, _ = server
    assert request(port, "POST", f"/model/parse?token={TOKEN}", b'{"text": "boom"}')[0] == 500
    assert request(port, "POST", f"/model/parse?token={TOKEN}", b'{"text": "ok"}')[0] == 200


def test_keeps_the_connection_for_the_next_request(server: tuple[int, StandInModel]) -> None:
    port, _ = server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for text in ("one", "two", "three"):
            conn.request("POST", f"/model/parse?token={TOKEN}", body=json.dumps({"text": text}))
            response = conn.getresponse()
            assert response.status == 200
            assert json.loads(response.read())["text"] == text
            assert response.getheader("Connection") == "keep-alive"
    finally:
        conn.close()


def test_stopping_closes_the_open_connections_before_it_returns() -> None:
    """A keep-alive connection waiting for its next request is closed by the server as it
    stops, not left to the garbage collector once the loop is gone."""
    with running(StandInModel()) as port:
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.recv(4096).startswith(b"HTTP/1.1 200")
    try:
        client.settimeout(1)  # the server has returned: the close must already be on the wire
        assert client.recv(4096) == b""
    finally:
        client.close()


def test_concurrent_requests_are_parsed_together_each_getting_its_own_answer(
    server: tuple[int, StandInModel],
) -> None:
    port, model = server
    texts = [f"question {n}" for n in range(24)]
    answers: dict[str, str] = {}

    def ask(text: str) -> None:
        status, body = request(
            port, "POST", f"/model/parse?token={TOKEN}", json.dumps({"text": text}).encode()
        )
        assert status == 200
        answers[text] = json.loads(body)["text"]

    threads = [threading.Thread(target=ask, args=(t,)) for t in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert answers == {t: t for t in texts}
    assert sorted(t for batch in model.batches for t in batch) == sorted(texts)
    assert max(len(batch) for batch in model.batches) > 1  # parsed together, not one by one


REAL_MODEL_CHECK = """
import asyncio, json, sys, warnings, logging
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
sys.path.insert(0, sys.argv[1])
from nlu.serve import Model
from rasa.core.agent import Agent
texts = json.loads(sys.argv[3])
reference = Agent.load(sys.argv[2])  # untouched: what `rasa run` would answer
async def agent():
    return [await reference.parse_message(t) for t in texts]
expected = asyncio.run(agent())
model = Model(sys.argv[2])
assert model._chain is not None, "the shipped pipeline must be served as a chain"
steps = [step.__qualname__ for step in model._chain[1]]
assert not any(q.startswith("_sentence_features") for q in steps), steps  # in the batch step
assert sum(q.startswith("_sentence_batch") for q in steps) == 1, steps
one = [model.parse_now([t])[0] for t in texts]
batched = model.parse_now(texts)
batch = next(s for s in model._chain[1] if s.__qualname__.startswith("_sentence_batch"))
scorer = batch.__closure__[batch.__code__.co_freevars.index("scorer")].cell_contents
assert scorer and scorer[0] is not None, "the shipped model is scored from its counts"
print(json.dumps({"expected": expected, "one": one, "batched": batched}))
"""


def test_the_shipped_model_answers_exactly_as_rasas_own_agent() -> None:
    """The same intent, confidence, ranking and fields as `rasa run` gives (Agent.parse_message
    is what its /model/parse calls), one by one and in a batch."""
    require_shipped_model()
    texts = [
        "what is social mobilization",
        "samajik parichalan vaneko k ho",
        "सामाजिक परिचालक को हो?",
        "how do i apply for a mobilizer job",
        "hello",
        "STOP",
        "who takes part in it in our ward and why is it important pls",
        "",  # no tokens, no features: Rasa's own components for the batch
        "/greet",
    ]
    root = Path(processes.__file__).resolve().parents[1]
    for held_out in ("nlu/eval.yml", "nlu/heldout.yml"):  # every message both sets hold
        texts += re.findall(r"^\s*- text: (.+)$", (root / held_out).read_text("utf-8"), re.M)
    assert len(texts) > 300
    out = subprocess.run(
        [str(processes.RASA_PYTHON), "-c", REAL_MODEL_CHECK, str(root), str(processes.MODEL),
         json.dumps(texts)],
        capture_output=True, text=True, timeout=300, check=True, cwd=root,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for got in (result["one"], result["batched"]):
        for mine, theirs in zip(got, result["expected"], strict=True):
            assert set(mine) == set(theirs)
            assert mine["text"] == theirs["text"]
            assert mine["intent"]["name"] == theirs["intent"]["name"]
            assert mine["intent"]["confidence"] == pytest.approx(theirs["intent"]["confidence"])
            assert [r["name"] for r in mine["intent_ranking"]] == [
                r["name"] for r in theirs["intent_ranking"]
            ]


LINEAR_SCORES_CHECK = """
import json, sys, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, sys.argv[1])
import numpy as np, scipy.sparse
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from nlu.serve import _LinearScores
train = ["what is social mobilization", "samajik parichalan k ho", "stop sending me messages",
         "who is a mobilizer", "hello there", "parichalak ko kaam", "thank you so much",
         "सामाजिक परिचालन के हो", "mobilizer ko job", "namaste hajur"]
labels = ["what", "what", "stop", "who", "greet", "who", "thanks", "what", "who", "greet"]
texts = ["what is mobilization mobilization", "k ho", "zzz qqq", "परिचालक को हो", "hello hello"]
out = {}
for binary in (False, True):
    vectorizers = [CountVectorizer(analyzer="word", ngram_range=(1, 2), binary=binary),
                   CountVectorizer(analyzer="char_wb", ngram_range=(2, 5))]
    blocks = [v.fit_transform(train) for v in vectorizers]
    clf = LogisticRegression(max_iter=300).fit(scipy.sparse.hstack(blocks).tocsr(), labels)
    scorer = _LinearScores.made_for(vectorizers, clf)
    expected = clf.predict_proba(scipy.sparse.hstack([v.transform(texts) for v in vectorizers]))
    got = scorer.probabilities([texts, texts])
    out[str(binary)] = float(np.abs(got - expected).max())
    out["narrower"] = _LinearScores.made_for(vectorizers[:1], clf) is None
    two = LogisticRegression(solver="liblinear").fit(blocks[0], ["a", "b"] * 5)
    out["one_vs_rest"] = _LinearScores.made_for(vectorizers[:1], two) is None
print(json.dumps(out))
"""


def test_scores_from_counts_are_scikit_learns_probabilities() -> None:
    """`_LinearScores` against `predict_proba` over the stacked count matrices, counted and
    binary, with n-grams out of the vocabulary; and no scorer for a model it does not
    compute (fewer columns than the weights, a one-vs-rest logistic regression)."""
    require_shipped_model()
    root = Path(processes.__file__).resolve().parents[1]
    out = subprocess.run(
        [str(processes.RASA_PYTHON), "-c", LINEAR_SCORES_CHECK, str(root)],
        capture_output=True, text=True, timeout=120, check=True, cwd=root,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["False"] < 1e-12
    assert result["True"] < 1e-12
    assert result["narrower"] is True
    assert result["one_vs_rest"] is True


LOAD_ORDER_CHECK = """
import sys, warnings, logging
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
sys.path.insert(0, sys.argv[1])
from nlu.serve import Model
Model(sys.argv[2])
loaded = list(sys.modules)  # in the order they were first imported
print(loaded.index("skops.io._trusted_types"), loaded.index("tensorflow"))
"""


def test_the_model_loads_skops_before_rasa_pulls_in_tensorflow() -> None:
    """skops' trusted-type lists walk every loaded module per ufunc: built before TensorFlow
    is imported, the model loads in half the time (nlu/serve.py Model)."""
    require_shipped_model()
    root = Path(processes.__file__).resolve().parents[1]
    out = subprocess.run(
        [str(processes.RASA_PYTHON), "-c", LOAD_ORDER_CHECK, str(root), str(processes.MODEL)],
        capture_output=True, text=True, timeout=300, check=True, cwd=root,
    )  # fmt: skip
    skops_at, tensorflow_at = map(int, out.stdout.split())
    assert skops_at < tensorflow_at
