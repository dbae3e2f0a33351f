"""Atlassian Document Format (Jira v3 rich text) to Markdown-ish text and back.

Covered: paragraphs, headings, bullet and ordered lists, code blocks, rules, hard breaks, and
the strong/em/code marks. Other nodes keep their text. `to_adf(to_text(doc))` reproduces what
this module writes, so a description the sync wrote reads back unchanged.
"""

import re

_INLINE = re.compile(r"\*\*(.+?)\*\*|`([^`]+)`|\*([^*]+)\*")
_ORDERED = re.compile(r"^(\d+)\. (.*)$")
_INLINE_NODES = ("text", "hardBreak", "mention", "emoji", "inlineCard")


def _marks(text, marks):
    for mark in marks or ():
        kind = mark.get("type")
        if kind == "strong":
            text = f"**{text}**"
        elif kind == "em":
            text = f"*{text}*"
        elif kind == "code":
            text = f"`{text}`"
    return text


def _inline(nodes):
    out = []
    for node in nodes or ():
        kind = node.get("type")
        if kind == "text":
            out.append(_marks(node.get("text", ""), node.get("marks")))
        elif kind == "hardBreak":
            out.append("\n")
        elif kind == "mention":
            out.append(node.get("attrs", {}).get("text", ""))
        elif kind in ("emoji", "inlineCard"):
            attrs = node.get("attrs", {})
            out.append(attrs.get("text") or attrs.get("shortName") or attrs.get("url", ""))
        else:
            out.append(_inline(node.get("content")))
    return "".join(out)


def _block(node):
    kind = node.get("type")
    content = node.get("content") or []
    if kind == "heading":
        level = int(node.get("attrs", {}).get("level", 1))
        return "#" * level + " " + _inline(content)
    if kind == "bulletList":
        return "\n".join("- " + _item(item) for item in content)
    if kind == "orderedList":
        start = int(node.get("attrs", {}).get("order", 1))
        return "\n".join(f"{start + i}. " + _item(item) for i, item in enumerate(content))
    if kind == "codeBlock":
        return "```\n" + "".join(n.get("text", "") for n in content) + "\n```"
    if kind == "rule":
        return "---"
    if kind in ("blockquote", "panel"):
        return "\n".join("> " + line for line in _blocks(content).split("\n"))
    if kind == "paragraph" or (content and content[0].get("type") in _INLINE_NODES):
        return _inline(content)
    return _blocks(content)


def _item(node):
    return _blocks(node.get("content")).replace("\n", " ")


def _blocks(nodes):
    return "\n\n".join(_block(node) for node in nodes or ())


def to_text(doc):
    """The text of an ADF document (None or a non-document: "")."""
    if isinstance(doc, str):
        return doc
    if not isinstance(doc, dict):
        return ""
    return _blocks(doc.get("content"))


def _text_nodes(text):
    nodes, at = [], 0
    for found in _INLINE.finditer(text):
        if found.start() > at:
            nodes.append({"type": "text", "text": text[at : found.start()]})
        strong, code, em = found.groups()
        mark = "strong" if strong is not None else "code" if code is not None else "em"
        nodes.append({"type": "text", "text": strong or code or em, "marks": [{"type": mark}]})
        at = found.end()
    if at < len(text):
        nodes.append({"type": "text", "text": text[at:]})
    return nodes


def _paragraph_content(text):
    content = []
    for i, line in enumerate(text.split("\n")):
        if i:
            content.append({"type": "hardBreak"})
        content.extend(_text_nodes(line))
    return content


def _list_item(text):
    return {"type": "listItem", "content": [{"type": "paragraph", "content": _text_nodes(text)}]}


def _chunk(chunk):
    lines = chunk.split("\n")
    if chunk.startswith("```\n") and chunk.endswith("\n```"):
        return {"type": "codeBlock", "content": [{"type": "text", "text": chunk[4:-4]}]}
    if chunk == "---":
        return {"type": "rule"}
    heading = re.match(r"^(#{1,6}) (.*)$", chunk)
    if heading and len(lines) == 1:
        level = len(heading.group(1))
        return {
            "type": "heading",
            "attrs": {"level": level},
            "content": _text_nodes(heading.group(2)),
        }
    if all(line.startswith("- ") for line in lines):
        return {"type": "bulletList", "content": [_list_item(line[2:]) for line in lines]}
    ordered = [_ORDERED.match(line) for line in lines]
    if all(ordered):
        start = int(ordered[0].group(1))
        if all(int(m.group(1)) == start + i for i, m in enumerate(ordered)):
            return {
                "type": "orderedList",
                "attrs": {"order": start},
                "content": [_list_item(m.group(2)) for m in ordered],
            }
    return {"type": "paragraph", "content": _paragraph_content(chunk)}


def _chunks(text):
    """Blank-line separated blocks, keeping a fenced code block whole."""
    chunks, current, fenced = [], [], False
    for line in text.split("\n"):
        if line == "```":
            fenced = not fenced
        if line == "" and not fenced:
            if current:
                chunks.append("\n".join(current))
            current = []
        else:
            current.append(line)
    if current:
        chunks.append("\n".join(current))
    return chunks


def to_adf(text):
    """An ADF document for `text` (empty text: None, which clears the field)."""
    if not text:
        return None
    return {"type": "doc", "version": 1, "content": [_chunk(chunk) for chunk in _chunks(text)]}
