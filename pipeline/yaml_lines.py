"""Where in a YAML file a key is written: what findings point at (lint, the policy).

Routes are the keys and indexes down to a node (["services", "app", "cap_add", 0]); merge
keys (`<<: *anchor`) are followed, so a key a service takes from an anchor is found inside
the anchor, where it is written.
"""

from __future__ import annotations

from collections.abc import Sequence

import yaml


def yaml_line(text: str, route: Sequence[str | int]) -> int | None:
    """The 1-based line of the deepest node of `route` found in the YAML text.

    Follows merge keys (`<<: *anchor`), so a key a service inherits from an anchor resolves
    to the line inside the anchor where it is written. None when nothing of the route is found.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for part in route:
        found = yaml_child(node, part)
        if found is None:
            break
        marker, node = found
        line = marker.start_mark.line + 1
    return line


def yaml_child(node: yaml.Node | None, part: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    """(node whose line to report, child node) for one step of a route."""
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
        if 0 <= part < len(node.value):
            return node.value[part], node.value[part]
        return None
    if not isinstance(node, yaml.MappingNode):
        return None
    merged: list[yaml.Node] = []
    for key, value in node.value:
        if key.tag == "tag:yaml.org,2002:merge":
            merged.extend(value.value if isinstance(value, yaml.SequenceNode) else [value])
        elif str(key.value) == str(part):
            return key, value
    for parent in merged:
        found = yaml_child(parent, part)
        if found is not None:
            return found
    return None


def yaml_error_line(text: str) -> int:
    """The line PyYAML stops at in malformed YAML, else 1."""
    try:
        yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        if mark is not None:
            return mark.line + 1
    except yaml.YAMLError:
        pass
    return 1
