"""Builds Rasa's NLU training data from the catalogue (`bot nlu build`, `make train`)."""

from __future__ import annotations

from pathlib import Path

import yaml

from nlu.catalogue import Catalogue


def rasa_nlu_yaml(catalogue: Catalogue) -> str:
    """The catalogue's examples as Rasa 3 NLU training data (intents `faq_<key>` and others)."""
    blocks = []
    groups = [
        *((t.intent, t.examples) for t in catalogue.topics.values()),
        *((i.intent, i.examples) for i in catalogue.intents.values()),
    ]
    for intent, examples in groups:
        texts = sorted({x for script in examples.values() for x in script})
        blocks.append({"intent": intent, "examples": "".join(f"- {t}\n" for t in texts)})

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


def write_training_data(catalogue: Catalogue, out_dir: Path) -> Path:
    """Writes `nlu.yml` into `out_dir` (created) and returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "nlu.yml"
    path.write_text(rasa_nlu_yaml(catalogue), encoding="utf-8")
    return path
