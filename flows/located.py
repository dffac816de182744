"""YAML that remembers where each mapping and list started, so errors can name the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.core.content import ContentError


class LocatedDict(dict[Any, Any]):
    """A YAML mapping with the (1-based) line it started on, and the line of each key."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        """The line of `key` in the file, or of the mapping when the key is absent."""
        return self.key_lines.get(key, self.line)


class LocatedList(list[Any]):
    """A YAML sequence with the (1-based) line it started on, and the line of each item."""

    line: int = 0
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, keeping line numbers on mappings and sequences."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LocatedDict:
    loader.flatten_mapping(node)
    result = LocatedDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise ContentError(f"line {key_node.start_mark.line + 1}: unhashable key") from None
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LocatedList:
    result = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_located(path: Path) -> Any:
    """Parses `path`, keeping line numbers; syntax errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContentError(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ContentError(f"{path}: not UTF-8 ({exc.reason})") from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ContentError(f"{path}{line}: {exc.problem or exc}") from None
    except ContentError as exc:
        raise ContentError(f"{path}: {exc}") from None


def locate(value: Any, line: int = 0) -> Any:
    """Wraps plain data (a definition kept in the database) so the checker can read it."""
    if isinstance(value, dict):
        located = LocatedDict({k: locate(v, line) for k, v in value.items()})
        located.line = line
        located.key_lines = {}
        return located
    if isinstance(value, list):
        items = LocatedList(locate(v, line) for v in value)
        items.line = line
        items.item_lines = [line] * len(items)
        return items
    return value
