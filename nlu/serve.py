"""The NLU server `bot run` starts: the trained Rasa pipeline behind Rasa's own parse API.

Runs in `.venv-rasa` (Python 3.10, Rasa Open Source 3.6): `RASA_TOKEN=T python -m nlu.serve
--model models/nlu.tar.gz -i 127.0.0.1 -p 5005`. It answers what the service asks of
`rasa run --enable-api`, in the same shapes, so RASA_URL may point at either:

- `GET /` -> 200 "Hello from Rasa: <version>" (readiness);
- `POST /model/parse?token=T` with `{"text": ...}` -> the parse data `rasa run` returns
  (text, intent, entities, intent_ranking).

Why not `rasa run` itself (issue 15: CPU per FAQ message): the model is Rasa's, loaded by
Rasa's own loader and run by its own components, but `rasa run` spends most of a parse
around them. Measured on one 400-question set in one process: `Agent.parse_message` 3.9 ms
of CPU per text (the Dask graph runner, a tracker per message, structured debug logging),
the same components called in order 2.4 ms, and 1.9 ms once the classifier's weights are
laid out for the sparse product (below); Sanic adds its own per request. The featurizers
of a pipeline whose classifier reads only whole-message features skip the per-token
matrices, and its classifier reads those features without Rasa's bookkeeping (below):
1.6 -> 1.1 -> 0.6 ms per text; with the classifier's scores summed from the n-grams'
counts instead of sparse matrices built and stacked for each text (`_LinearScores`),
0.80-0.93 -> 0.41-0.43 ms per text one at a time (the 307 held-out texts, three runs
alternating with the commit before; equal within noise in batches of 8). Concurrent
requests are parsed together, as one batch through each component (1.4 ms per text in
batches of 16), without waiting for a batch to fill: a request that finds the model idle
is parsed at once.

What it does not do: anything but parse (no training, no model replacement over HTTP, no
dialogue). A pipeline whose graph is not a plain chain of message-processing components is
served through `Agent.parse_message`, as `rasa run` would, only slower.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hmac
import json
import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 64 * 1024  # a parse request is one text message
MAX_BATCH = 32
HEADER_LIMIT = 16 * 1024

log = logging.getLogger("nlu.serve")


class Model:
    """The trained pipeline: `parse(texts)` -> Rasa's parse data for each text, in order."""

    def __init__(self, path: str) -> None:
        # skops (how Rasa stores the classifier) builds its list of trusted types when first
        # imported, finding each NumPy and SciPy ufunc's module by a walk over every loaded
        # module. After Rasa, TensorFlow and their thousands of modules that walk took 5.9 s
        # here, before them 1.2 s, with the same lists: imported first, the model loads in
        # 5.0 s instead of 10.1 s, at every start and every restart of the NLU server.
        import skops.io  # noqa: F401
        from rasa.core.agent import Agent

        self.agent = Agent.load(path)
        self.version = _rasa_version()
        self._chain = _component_chain(self.agent)
        if self._chain is None:
            log.warning(
                "the model's graph is not a chain of components: parsing through Rasa's agent"
            )

    async def parse(self, texts: list[str]) -> list[dict[str, Any]]:
        if self._chain is None:
            return [await self.agent.parse_message(text) for text in texts]
        # On the loop's thread: a parse takes about two milliseconds of CPU, and requests
        # arriving meanwhile wait in the socket buffers to be parsed together next.
        return self.parse_now(texts)

    def parse_now(self, texts: list[str]) -> list[dict[str, Any]]:
        """The chain of components over `texts` as one batch."""
        from rasa.core.channels.channel import UserMessage

        assert self._chain is not None
        converter, steps = self._chain
        messages = converter([UserMessage(text) for text in texts])
        for step in steps:
            messages = step(messages)
        return [_parse_data(message) for message in messages]


def _rasa_version() -> str:
    import rasa

    return str(rasa.__version__)


def _component_chain(agent: Any) -> tuple[Any, list[Any]] | None:
    """The model's prediction graph as (message converter, [component step, ...]) when it is
    a plain chain from the user message to the NLU target, else None.

    Reads the graph Rasa built for this model (its schema and the components it loaded), so
    the steps are exactly those `rasa run` would run, in its order, with its trained state.
    """
    import numpy as np

    processor = agent.processor
    runner = processor.graph_runner
    schema = getattr(runner, "_graph_schema", None)
    nodes = getattr(runner, "_instantiated_nodes", None)
    if schema is None or nodes is None:
        return None
    chain: list[str] = []
    name = processor.model_metadata.nlu_target
    while name in schema.nodes:
        chain.append(name)
        needs = schema.nodes[name].needs
        if list(needs) != ["messages"]:
            return None
        name = needs["messages"]
    if name != "__message__" or not chain:
        return None
    chain.reverse()
    components = [getattr(nodes[name], "_component", None) for name in chain]
    if any(component is None for component in components):
        return None
    sentence_only = {type(c).__name__ for c in components} <= SENTENCE_ONLY_PIPELINE
    calls = []
    featurizers: list[Any] = []
    for node_name, component in zip(chain, components, strict=True):
        if sentence_only and type(component).__name__ == "CountVectorsFeaturizer":
            featurizers.append(component)
        elif sentence_only and type(component).__name__ == "LogisticRegressionClassifier":
            calls.append(_sentence_batch(featurizers, component))
            featurizers = []
        else:
            calls.extend(_sentence_features(f) for f in featurizers)
            featurizers = []
            calls.append(getattr(component, schema.nodes[node_name].fn))
        # A scikit-learn linear model multiplies sparse features by its weights transposed:
        # in Fortran order that transpose is contiguous, not copied (4 MB) at every parse.
        # The same numbers in another memory layout: identical results.
        classifier: Any = getattr(component, "clf", None)
        coef = getattr(classifier, "coef_", None)
        if isinstance(coef, np.ndarray) and coef.ndim == 2:
            classifier.coef_ = np.asfortranarray(coef)
    calls.extend(_sentence_features(f) for f in featurizers)
    return calls[0], calls[1:]


# Pipelines made only of these components read the count vectors of the whole message and
# never those of each token: LogisticRegressionClassifier takes the sentence features alone
# (its `_create_X`); the converter, the tokenizer and RegexMessageHandler read no features.
SENTENCE_ONLY_PIPELINE = frozenset(
    {
        "NLUMessageConverter",
        "WhitespaceTokenizer",
        "CountVectorsFeaturizer",
        "LogisticRegressionClassifier",
        "RegexMessageHandler",
    }
)


def _sentence_features(featurizer: Any) -> Any:
    """`CountVectorsFeaturizer.process` for a pipeline that reads sentence features only:
    the same vectorizer over the same joined tokens (its `_create_features`), the same
    Features on the message, without the per-token matrix nobody reads. Measured on the 307
    texts of nlu/eval.yml and nlu/heldout.yml: 1.61 -> 1.06 ms of CPU per text in batches of
    4, every answer identical (tests/nlu_unit/test_serve.py compares with Rasa's agent)."""
    from rasa.shared.nlu.constants import TEXT

    def process(messages: list[Any]) -> list[Any]:
        vectorizer = featurizer.vectorizers.get(TEXT) if featurizer.vectorizers else None
        if vectorizer is None:
            return list(featurizer.process(messages))
        for message in messages:
            tokens = featurizer._get_processed_message_tokens_by_attribute(message, TEXT)
            if not tokens:
                continue
            sentence = vectorizer.transform([" ".join(tokens)])
            sentence.sort_indices()
            featurizer.add_features_to_message(None, sentence.tocoo(), TEXT, message)
        return messages

    return process


def _sentence_classifier(classifier: Any) -> Any:
    """`LogisticRegressionClassifier.process` on the sentence features the featurizers above
    put on each message: the matrix its `_create_X` builds (each message's sparse sentence
    features side by side in the featurizers' order; this pipeline has no dense ones), its
    classifier's `predict_proba`, and the intent and ranking set as it sets them, without
    Rasa's feature bookkeeping (a deep copy and three sparse conversions per message). A batch
    it cannot build that way (a message without features) goes through Rasa's own `process`."""
    import scipy.sparse
    from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, TEXT

    def process(messages: list[Any]) -> list[Any]:
        rows = []
        for message in messages:
            features = [
                f.features
                for f in message.features
                if f.attribute == TEXT and f.type == FEATURE_TYPE_SENTENCE
            ]
            if not features or not all(scipy.sparse.issparse(f) for f in features):
                return list(classifier.process(messages))
            rows.append(scipy.sparse.hstack(features))
        _set_intents(classifier, messages, classifier.clf.predict_proba(scipy.sparse.vstack(rows)))
        return messages

    return process


def _sentence_batch(featurizers: list[Any], classifier: Any) -> Any:
    """The count-vector featurizers and the classifier after them, as one step over a batch:
    each featurizer's vectorizer over the batch's texts at once (one sparse matrix, rows in
    the batch's order), the featurizers' matrices side by side in their order, and the
    classifier's `predict_proba` on that. It is the matrix `_sentence_classifier` builds
    from the features `_sentence_features` puts on each message (the same counts, the same
    sorted columns, the same order), without making a Features object, a COO copy and a
    one-row stack per message. Measured on the texts of nlu/eval.yml and nlu/heldout.yml
    one at a time: see the README's issue-15 section. When `_LinearScores` covers the model
    (the shipped one), the same probabilities are summed from each text's counts and no
    matrix is built at all. A batch with a message of no tokens, or a featurizer without a
    text vectorizer, takes the per-message steps instead."""
    import scipy.sparse
    from rasa.shared.nlu.constants import TEXT

    per_message = [_sentence_features(f) for f in featurizers]
    classify = _sentence_classifier(classifier)
    scorer: list[_LinearScores | None] = []  # made at the first batch (the model is loaded)

    def one_by_one(messages: list[Any]) -> list[Any]:
        for step in per_message:
            messages = step(messages)
        return list(classify(messages))

    def process(messages: list[Any]) -> list[Any]:
        vectorizers, docs = [], []
        for featurizer in featurizers:
            vectorizer = featurizer.vectorizers.get(TEXT) if featurizer.vectorizers else None
            if vectorizer is None or not messages:
                return one_by_one(messages)
            joined = []
            for message in messages:
                tokens = featurizer._get_processed_message_tokens_by_attribute(message, TEXT)
                if not tokens:
                    return one_by_one(messages)
                joined.append(" ".join(tokens))
            vectorizers.append(vectorizer)
            docs.append(joined)
        if not scorer:
            scorer.append(_LinearScores.made_for(vectorizers, classifier.clf))
        if scorer[0] is not None and scorer[0].vectorizers == vectorizers:
            probabilities = scorer[0].probabilities(docs)
        else:
            blocks = [v.transform(joined) for v, joined in zip(vectorizers, docs, strict=True)]
            matrix = blocks[0] if len(blocks) == 1 else scipy.sparse.hstack(blocks, format="csr")
            probabilities = _probabilities(classifier.clf, matrix)
        _set_intents(classifier, messages, probabilities)
        return messages

    return process


class _LinearScores:
    """The class probabilities of a multinomial logistic regression over count vectors side
    by side, computed from the counts themselves: each text's n-grams looked up in its
    vectorizer's vocabulary, the weights' columns of those found multiplied by their counts
    and summed, plus the intercept, then the same softmax as `predict_proba`. That is the
    product `vectorizer.transform`, `scipy.sparse.hstack` and `predict_proba` compute, term
    by term, without building a sparse matrix per vectorizer and stacking them (about half
    of a parse's CPU in the NLU server's profile at 100 messages a second: issue 15). The
    same vocabulary, analyzer and columns; `tests/nlu_unit/test_serve.py` compares every
    answer with Rasa's own agent. Made only for what it covers (`made_for`)."""

    def __init__(self, vectorizers: list[Any], clf: Any) -> None:
        import numpy as np

        self.vectorizers = vectorizers
        self._np = np
        self._analyzers = [v.build_analyzer() for v in vectorizers]
        self._vocabularies = [v.vocabulary_ for v in vectorizers]
        self._binary = [bool(v.binary) for v in vectorizers]
        offsets, offset = [], 0
        for v in vectorizers:
            offsets.append(offset)
            offset += len(v.vocabulary_)
        self._offsets = offsets
        self._weights = np.asfortranarray(clf.coef_)  # a column per feature, contiguous
        self._intercept = clf.intercept_

    @classmethod
    def made_for(cls, vectorizers: list[Any], clf: Any) -> _LinearScores | None:
        """The scorer, or None when the model is not what it computes: not a multinomial
        logistic regression over exactly these vectorizers' columns, or a vectorizer that
        is not a plain fitted count vectorizer (scikit-learn's `CountVectorizer`)."""
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.linear_model import LogisticRegression

        if type(clf) is not LogisticRegression or not _multinomial(clf):
            return None
        if any(type(v) is not CountVectorizer for v in vectorizers):
            return None
        if any(not isinstance(getattr(v, "vocabulary_", None), dict) for v in vectorizers):
            return None
        if sum(len(v.vocabulary_) for v in vectorizers) != clf.coef_.shape[1]:
            return None
        return cls(vectorizers, clf)

    def probabilities(self, docs: list[list[str]]) -> Any:
        """One row of class probabilities per text; `docs[i]` is what the i-th vectorizer
        reads of each text, in the batch's order."""
        from sklearn.utils.extmath import softmax

        np = self._np
        scores = np.tile(self._intercept, (len(docs[0]), 1))
        for k, texts in enumerate(docs):
            analyze, lookup = self._analyzers[k], self._vocabularies[k].get
            for row, text in enumerate(texts):
                found = [i for i in map(lookup, analyze(text)) if i is not None]
                if not found:
                    continue
                found_at = np.asarray(found) + self._offsets[k]
                columns, counts = np.unique(found_at, return_counts=True)
                if self._binary[k]:
                    scores[row] += self._weights[:, columns].sum(axis=1)
                else:
                    scores[row] += self._weights[:, columns] @ counts.astype(scores.dtype)
        return softmax(scores, copy=False)


def _multinomial(clf: Any) -> bool:
    """Whether `predict_proba` of this logistic regression is the softmax of its scores."""
    return bool(
        clf.multi_class == "multinomial"
        or (clf.multi_class == "auto" and clf.classes_.size > 2 and clf.solver != "liblinear")
    )


def _probabilities(clf: Any, matrix: Any) -> Any:
    """`clf.predict_proba(matrix)` for a multinomial logistic regression, without checking
    again a matrix the vectorizers have just built (scikit-learn's validation took about a
    tenth of a parse): the same product with the weights and the same softmax, so the same
    numbers. Any other model, or a matrix of another width, goes through `predict_proba`."""
    from sklearn.utils.extmath import safe_sparse_dot, softmax

    if not _multinomial(clf) or matrix.shape[1] != clf.coef_.shape[1]:
        return clf.predict_proba(matrix)
    scores = safe_sparse_dot(matrix, clf.coef_.T, dense_output=True) + clf.intercept_
    return softmax(scores, copy=False)


def _set_intents(classifier: Any, messages: list[Any], probabilities: Any) -> None:
    """The intent and ranking from each message's row of class probabilities, as
    `LogisticRegressionClassifier.process` sets them."""
    from rasa.utils.tensorflow.constants import RANKING_LENGTH

    intents = classifier.clf.classes_
    length = classifier.config[RANKING_LENGTH]
    for message, row in zip(messages, probabilities, strict=True):
        ranking = sorted(
            ({"name": k, "confidence": v} for k, v in zip(intents, row, strict=True)),
            key=lambda e: -e["confidence"],
        )
        message.set("intent", ranking[0], add_to_output=True)
        message.set(
            "intent_ranking", ranking[:length] if length > 0 else ranking, add_to_output=True
        )


def _parse_data(message: Any) -> dict[str, Any]:
    """What `MessageProcessor._parse_message_with_graph` makes of a processed message."""
    data: dict[str, Any] = {"text": "", "intent": {"name": None, "confidence": 0.0}, "entities": []}
    data.update(message.as_dict(only_output_properties=True))
    return data


class Batcher:
    """Parses the texts of concurrent requests together: those queued when the model is
    free again make the next batch (up to MAX_BATCH)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.queue: asyncio.Queue[tuple[str, asyncio.Future[dict[str, Any]]]] = asyncio.Queue()

    async def parse(self, text: str) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        await self.queue.put((text, future))
        return await future

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < MAX_BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            texts = [text for text, _ in batch]
            try:
                results = await self.model.parse(texts)
            except Exception as exc:  # one bad batch fails its requests, not the server
                log.exception("parsing a batch of %d failed", len(texts))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


class Server:
    """HTTP/1.1 with keep-alive: the few requests the service makes, nothing else."""

    def __init__(self, batcher: Batcher, token: str | None, version: str) -> None:
        self.batcher = batcher
        self.token = token
        self.version = version
        self.connections: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Closes every open connection (keep-alive ones wait for their next request) and
        waits until their sockets are closed."""
        tasks = list(self.connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return  # the client closed the connection
                except asyncio.LimitOverrunError:
                    await self._respond(writer, 431, {"error": "headers too large"}, close=True)
                    return
                request = _request(head)
                if request is None:
                    await self._respond(writer, 400, {"error": "malformed request"}, close=True)
                    return
                method, target, headers = request
                length = headers.get("content-length", "0")
                if not length.isdigit() or int(length) > MAX_BODY:
                    await self._respond(writer, 413, {"error": "body too large"}, close=True)
                    return
                body = await reader.readexactly(int(length)) if int(length) else b""
                status, payload = await self._route(method, target, body)
                close = headers.get("connection", "").lower() == "close"
                await self._respond(writer, status, payload, close=close)
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
            try:
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()  # closed for good before the loop may stop
            finally:
                self.connections.discard(task)

    async def _route(self, method: str, target: str, body: bytes) -> tuple[int, Any]:
        url = urlsplit(target)
        if method == "GET" and url.path == "/":
            return 200, f"Hello from Rasa: {self.version}"
        if url.path != "/model/parse":
            return 404, {"error": "not found"}
        if method != "POST":
            return 405, {"error": "method not allowed"}
        if self.token is not None:
            given = parse_qs(url.query).get("token", [""])[0]
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return 401, {"error": "missing or wrong token"}
        try:
            data = json.loads(body)
            text = data["text"]
        except (ValueError, KeyError, TypeError):
            return 400, {"error": 'a JSON object {"text": ...} is expected'}
        if not isinstance(text, str):
            return 400, {"error": "text must be a string"}
        try:
            return 200, await self.batcher.parse(text)
        except Exception:
            return 500, {"error": "the model could not parse this text"}

    @staticmethod
    async def _respond(
        writer: asyncio.StreamWriter, status: int, payload: Any, close: bool = False
    ) -> None:
        if isinstance(payload, str):
            body, kind = payload.encode(), "text/plain; charset=utf-8"
        else:
            body, kind = json.dumps(payload).encode(), "application/json"
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
                  405: "Method Not Allowed", 413: "Payload Too Large",
                  431: "Request Header Fields Too Large",
                  500: "Internal Server Error"}.get(status, "Error")  # fmt: skip
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()


def _request(head: bytes) -> tuple[str, str, dict[str, str]] | None:
    """(method, target, lower-cased headers) of a request head, or None when malformed."""
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        return None
    if not version.startswith("HTTP/1."):
        return None
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            return None
        headers[name.strip().lower()] = value.strip()
    return method, target, headers


async def serve(
    model: Any,
    host: str,
    port: int,
    token: str | None,
    stopping: asyncio.Event | None = None,
    started: Callable[[int], None] | None = None,
) -> None:
    """Serves `model` (a `Model`, or anything with `version` and `async parse(texts)`) until
    SIGTERM/SIGINT, or until `stopping` is set when one is given; `started(port)` is called
    once it listens (port 0 picks a free one)."""
    batcher = Batcher(model)
    server = Server(batcher, token, model.version)
    listener = await asyncio.start_server(server.handle, host, port, limit=HEADER_LIMIT)
    if stopping is None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
    worker = asyncio.create_task(batcher.run())
    bound = listener.sockets[0].getsockname()[1]
    log.info("serving the model on http://%s:%d", host, bound)
    if started is not None:
        started(bound)
    await stopping.wait()
    listener.close()  # no new connections; then the open ones (which wait_closed awaits on 3.12+)
    await server.close()
    await listener.wait_closed()
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (and RASA_TOKEN) of `python -m nlu.serve`."""
    parser = argparse.ArgumentParser(prog="python -m nlu.serve", description=__doc__)
    parser.add_argument("--model", "-m", required=True, help="the trained model (.tar.gz)")
    parser.add_argument("-i", "--interface", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5005)
    parser.add_argument(
        "--auth-token",
        default=os.environ.get("RASA_TOKEN") or None,
        help="the token every parse request must carry (default: RASA_TOKEN from the "
        "environment, where other users cannot read it as they can a command line)",
    )
    parser.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.quiet:  # Rasa's and TensorFlow's start-up chatter
        warnings.filterwarnings("ignore")
        # Some of the libraries add filters of their own while they load (a "once" for
        # DeprecationWarning among them), ahead of ours: their deprecation notices still
        # reached the terminal of `make run`. Routed to a logger kept at ERROR, they do not.
        logging.captureWarnings(True)
        logging.getLogger("py.warnings").setLevel(logging.ERROR)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        _quiet_structlog()
    model = Model(args.model)
    # The loaded model and libraries stay for the process's life: out of the cyclic
    # collector's walks (a full one over them holds the GIL, and every parse, for long).
    gc.collect()
    gc.freeze()
    asyncio.run(serve(model, args.interface, args.port, args.auth_token))


def _quiet_structlog() -> None:
    """Rasa logs a debug line per parse through structlog: not even formatted here."""
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


if __name__ == "__main__":
    main()
