"""Builds Rasa's NLU training data from the catalogue (`bot nlu build`, `make train`).

Examples coordinators made from real messages in the dashboard's NLU review (the
`nlu_examples` table) are added to their intents when a database is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from bot.core.wording import fold
from nlu.catalogue import Catalogue


def rasa_nlu_yaml(catalogue: Catalogue, extra: Mapping[str, Sequence[str]] | None = None) -> str:
    """The catalogue's examples as Rasa 3 NLU training data (intents `faq_<key>` and others).

    Every example is written as `bot.core.wording.fold` spells it, the form the client sends
    at parse time, so "xa", "cha" and "chha" or "परीचालन" and "परिचालन" are one feature.
    An example whose folded form another intent already has is left out.

    Args:
        catalogue: the FAQ topics and conversational intents from `data/`.
        extra: more examples per intent (from the NLU review). Examples of intents the
            catalogue does not have, and examples the catalogue already gives another
            intent, are left out: the files stay the authority.
    """
    blocks = []
    groups = [
        *((t.intent, t.examples) for t in catalogue.topics.values()),
        *((i.intent, i.examples) for i in catalogue.intents.values()),
    ]
    owner: dict[str, str] = {}
    for intent, examples in groups:
        for texts in examples.values():
            for text in texts:
                owner.setdefault(fold(text).casefold(), intent)
    for intent, examples in groups:
        folded = {fold(x) for script in examples.values() for x in script}
        kept = {x for x in folded if owner[x.casefold()] == intent}
        for text in (extra or {}).get(intent, ()):
            cleaned = fold(text)
            if cleaned and owner.setdefault(cleaned.casefold(), intent) == intent:
                kept.add(cleaned)
        blocks.append({"intent": intent, "examples": "".join(f"- {t}\n" for t in sorted(kept))})

    class _Literal(str):
        pass

    def literal(dumper: yaml.SafeDumper, data: _Literal) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")

    yaml.add_representer(_Literal, literal, Dumper=yaml.SafeDumper)
    document = {
        "version": "3.1",
        "nlu": [{"intent": b["intent"], "examples": _Literal(b["examples"])} for b in blocks],
    }
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=1000)


def write_training_data(
    catalogue: Catalogue, out_dir: Path, extra: Mapping[str, Sequence[str]] | None = None
) -> Path:
    """Writes `nlu.yml` into `out_dir` (created) and returns its path.

    Args:
        catalogue: the FAQ topics and conversational intents.
        out_dir: where to write.
        extra: more examples per intent, e.g. `database_examples(url)`.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "nlu.yml"
    path.write_text(rasa_nlu_yaml(catalogue, extra), encoding="utf-8")
    return path


def database_examples(database_url: str) -> dict[str, list[str]]:
    """The examples made in the dashboard's NLU review, by intent (oldest first).

    A database migrated before the review existed has none.
    """
    from sqlalchemy import inspect, select

    from bot.db.database import Database
    from bot.db.models import NluExample

    db = Database(database_url)
    try:
        if not inspect(db.engine).has_table(NluExample.__tablename__):
            return {}
        examples: dict[str, list[str]] = {}
        with db.read() as session:
            for intent, text in session.execute(
                select(NluExample.intent, NluExample.text).order_by(NluExample.id)
            ):
                examples.setdefault(intent, []).append(text)
        return examples
    finally:
        db.dispose()
