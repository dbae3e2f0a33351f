"""Atlassian Document Format (v3 rich text) and Jira wiki markup (v2 rich text).

Rich text is stored as ADF. The v2 API reads and writes wiki markup, so both directions are
here: ADF → wiki for v2 responses, wiki → ADF for v2 requests, and ADF → plain text for
changelog strings. Only the common nodes are covered (paragraph, heading, lists, code block,
rule, hard break, text with strong/em/code/strike/link marks, mention); unknown nodes render
their text content.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "adf_to_text",
    "adf_to_wiki",
    "bullet_list",
    "doc",
    "heading",
    "is_document",
    "paragraph",
    "text",
    "wiki_to_adf",
]

Node = dict[str, Any]


# -- builder ----------------------------------------------------------------------------


def text(value: str, *marks: str, href: str | None = None) -> Node:
    node: Node = {"type": "text", "text": value}
    mark_list: list[Node] = [{"type": m} for m in marks]
    if href is not None:
        mark_list.append({"type": "link", "attrs": {"href": href}})
    if mark_list:
        node["marks"] = mark_list
    return node


def paragraph(*inline: Node | str) -> Node:
    content = [text(i) if isinstance(i, str) else i for i in inline]
    return {"type": "paragraph", "content": content}


def heading(level: int, value: str) -> Node:
    return {"type": "heading", "attrs": {"level": level}, "content": [text(value)]}


def bullet_list(items: Iterable[str], *, ordered: bool = False) -> Node:
    return {
        "type": "orderedList" if ordered else "bulletList",
        "content": [{"type": "listItem", "content": [paragraph(i)]} for i in items],
    }


def code_block(value: str) -> Node:
    return {"type": "codeBlock", "content": [text(value)] if value else []}


def doc(*blocks: Node) -> Node:
    return {"type": "doc", "version": 1, "content": list(blocks)}


def is_document(value: object) -> bool:
    """Whether `value` looks like an ADF document (what Jira accepts for rich-text fields)."""
    return (
        isinstance(value, Mapping)
        and value.get("type") == "doc"
        and value.get("version") == 1
        and isinstance(value.get("content"), list)
        and all(isinstance(n, Mapping) and isinstance(n.get("type"), str) for n in value["content"])
    )


# -- ADF → text / wiki ------------------------------------------------------------------


def adf_to_text(node: Mapping[str, Any] | None) -> str:
    """The plain text of a document: blocks separated by blank lines."""
    if node is None:
        return ""
    return _render(node, wiki=False).strip("\n")


def adf_to_wiki(node: Mapping[str, Any] | None) -> str | None:
    """The document in Jira wiki markup, as the v2 API returns rich text."""
    if node is None:
        return None
    return _render(node, wiki=True).strip("\n")


_WIKI_MARKS = {"strong": "*", "em": "_", "strike": "-", "underline": "+"}


def _inline(node: Mapping[str, Any], wiki: bool) -> str:
    kind = node.get("type")
    if kind == "text":
        value = str(node.get("text", ""))
        if not wiki:
            return value
        for mark in node.get("marks", ()):
            mark_type = mark.get("type")
            if mark_type in _WIKI_MARKS:
                value = f"{_WIKI_MARKS[mark_type]}{value}{_WIKI_MARKS[mark_type]}"
            elif mark_type == "code":
                value = "{{" + value + "}}"
            elif mark_type == "link":
                value = f"[{value}|{mark.get('attrs', {}).get('href', '')}]"
        return value
    if kind == "hardBreak":
        return "\n"
    if kind == "mention":
        attrs = node.get("attrs", {})
        return f"[~accountid:{attrs.get('id', '')}]" if wiki else str(attrs.get("text", ""))
    return "".join(_inline(child, wiki) for child in node.get("content", ()))


def _render(node: Mapping[str, Any], wiki: bool, depth: int = 1) -> str:
    kind = node.get("type")
    children = node.get("content", ())
    if kind == "doc":
        return "\n\n".join(_render(child, wiki) for child in children)
    if kind == "paragraph":
        return "".join(_inline(child, wiki) for child in children)
    if kind == "heading":
        body = "".join(_inline(child, wiki) for child in children)
        return f"h{node.get('attrs', {}).get('level', 1)}. {body}" if wiki else body
    if kind in ("bulletList", "orderedList"):
        bullet = ("*" if kind == "bulletList" else "#") * depth
        lines = []
        for item in children:
            for block in item.get("content", ()):
                if block.get("type") in ("bulletList", "orderedList"):
                    lines.append(_render(block, wiki, depth + 1))
                else:
                    body = _render(block, wiki, depth)
                    lines.append(f"{bullet} {body}" if wiki else body)
        return "\n".join(lines)
    if kind == "codeBlock":
        body = "".join(_inline(child, wiki) for child in children)
        return "{code}\n" + body + "\n{code}" if wiki else body
    if kind == "rule":
        return "----" if wiki else ""
    if kind == "blockquote":
        body = "\n\n".join(_render(child, wiki) for child in children)
        return "{quote}\n" + body + "\n{quote}" if wiki else body
    return _inline(node, wiki)


# -- wiki → ADF -------------------------------------------------------------------------

_HEADING = re.compile(r"^h([1-6])\.\s+(.*)$")
_LIST_ITEM = re.compile(r"^([*#]+)\s+(.*)$")
_INLINE = re.compile(
    r"\{\{(?P<code>.+?)\}\}"
    r"|\[(?P<label>[^|\]]+)\|(?P<href>[^\]]+)\]"
    r"|\[~accountid:(?P<mention>[^\]]+)\]"
    r"|(?<!\w)\*(?P<strong>[^*\n]+)\*(?!\w)"
    r"|(?<!\w)_(?P<em>[^_\n]+)_(?!\w)"
)


def _wiki_inline(line: str) -> list[Node]:
    nodes: list[Node] = []
    position = 0
    for match in _INLINE.finditer(line):
        if match.start() > position:
            nodes.append(text(line[position : match.start()]))
        if match["code"] is not None:
            nodes.append(text(match["code"], "code"))
        elif match["label"] is not None:
            nodes.append(text(match["label"], href=match["href"]))
        elif match["mention"] is not None:
            nodes.append({"type": "mention", "attrs": {"id": match["mention"]}})
        elif match["strong"] is not None:
            nodes.append(text(match["strong"], "strong"))
        else:
            nodes.append(text(match["em"], "em"))
        position = match.end()
    if position < len(line):
        nodes.append(text(line[position:]))
    return nodes


def _wiki_paragraph(lines: list[str]) -> Node:
    content: list[Node] = []
    for i, line in enumerate(lines):
        if i:
            content.append({"type": "hardBreak"})
        content.extend(_wiki_inline(line))
    return {"type": "paragraph", "content": content}


def wiki_to_adf(markup: str | None) -> Node | None:
    """An ADF document for v2 wiki markup (None and "" stay empty)."""
    if not markup:
        return None
    blocks: list[Node] = []
    lines = markup.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if line.strip() == "{code}" or line.startswith("{code"):
            end = i + 1
            while end < len(lines) and lines[end].strip() != "{code}":
                end += 1
            blocks.append(code_block("\n".join(lines[i + 1 : end])))
            i = end + 1
            continue
        if line.strip() == "----":
            blocks.append({"type": "rule"})
            i += 1
            continue
        if heading_match := _HEADING.match(line):
            blocks.append(
                {
                    "type": "heading",
                    "attrs": {"level": int(heading_match[1])},
                    "content": _wiki_inline(heading_match[2]),
                }
            )
            i += 1
            continue
        if _LIST_ITEM.match(line):
            items: list[Node] = []
            ordered = line.startswith("#")
            while i < len(lines) and (item := _LIST_ITEM.match(lines[i])):
                items.append({"type": "listItem", "content": [_wiki_paragraph([item[2]])]})
                i += 1
            blocks.append({"type": "orderedList" if ordered else "bulletList", "content": items})
            continue
        paragraph_lines = []
        while (
            i < len(lines)
            and lines[i].strip()
            and not _HEADING.match(lines[i])
            and not _LIST_ITEM.match(lines[i])
            and not lines[i].startswith("{code")
        ):
            paragraph_lines.append(lines[i])
            i += 1
        blocks.append(_wiki_paragraph(paragraph_lines))
    return doc(*blocks)
