"""Block Kit for Slack: render a :class:`Reply` and keep every message inside Slack's limits.

Pure functions over plain dicts, no Slack SDK: the adapter (``slack.py``) sends what these
return. Slack rejects a whole message (``invalid_blocks``) when one block breaks a limit, so
:func:`fit_blocks` truncates (with "…"), splits or merges instead; a digest with a long
field still goes out.

How tone reads: Block Kit has no colour inside blocks, and the legacy attachment colour bar
folds content behind "Show more". A coloured emoji (🟢 better, 🔴 worse) before the
comparison is opaque on light and dark themes alike, and the ▲/▼ in the comparison text
keeps the direction readable for colour-blind readers and in notifications. In a field
the emoji sits by the change ("-16  🔴 ▼ 37"), so the figures line up down the column.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bot.replies import TONE_MARK, Field, Reply, mark_change, text_sections

# Block Kit limits (https://docs.slack.dev/reference/block-kit/blocks).
MAX_BLOCKS = 50
MAX_HEADER_TEXT = 150
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_CONTEXT_TEXT = 3000
# Not a Block Kit limit: the top-level ``text`` shows in notifications and screen readers;
# Slack truncates messages past 40,000 characters and advises staying under 4,000.
MAX_FALLBACK_TEXT = 4000
ELLIPSIS = "…"

Block = dict[str, Any]


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in "…" when anything was cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def escape(text: str) -> str:
    """Escape the three characters mrkdwn treats as markup (``<@U1>``, ``&amp;``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _field_text(field: Field) -> str:
    return f"*{escape(field.label)}*\n{mark_change(escape(field.value), TONE_MARK[field.tone])}"


def render_blocks(reply: Reply, *, notes: Sequence[str] = ()) -> list[Block]:
    """Block Kit for ``reply``: header, headline and comparison, text, fields, context.

    ``notes`` are extra small-print lines the adapter adds (e.g. where the chart went).
    """
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": reply.title, "emoji": True}}
    ]
    figure = []
    if reply.headline:
        figure.append(f"*{escape(reply.headline)}*")
    if reply.comparison:
        figure.append(TONE_MARK[reply.tone] + escape(reply.comparison))
    if figure:
        blocks.append({"type": "section", "text": _mrkdwn("\n".join(figure))})
    text = reply.text or ""
    sections: list[tuple[str, str]] = []
    if reply.kind == "digest":  # the figures first, then who moved them and what they said
        text, sections = text_sections(text)
    if text.strip():
        blocks.append({"type": "section", "text": _mrkdwn(escape(text))})
    if reply.fields:
        blocks.append(
            {"type": "section", "fields": [_mrkdwn(_field_text(f)) for f in reply.fields]}
        )
    for title, body in sections:
        blocks.append({"type": "section", "text": _mrkdwn(f"*{escape(title)}*\n{escape(body)}")})
    small_print = [*reply.context, *notes]
    if small_print:
        blocks.append(
            {"type": "context", "elements": [_mrkdwn(escape(line)) for line in small_print]}
        )
    return fit_blocks(blocks)


def fallback_text(reply: Reply) -> str:
    """The message's top-level ``text``: notifications, search and screen readers use it."""
    return truncate(escape(reply.plain_text()), MAX_FALLBACK_TEXT)


# -- limits -----------------------------------------------------------------------------


def fit_blocks(blocks: Iterable[Block]) -> list[Block]:
    """``blocks`` brought within Block Kit's limits; never raises, never drops a message.

    Texts are truncated with "…"; a section with more than ten fields becomes several
    sections; a context's eleventh element onwards is merged into its tenth; past fifty
    blocks, the last kept block says how many were left out.
    """
    fitted: list[Block] = []
    for block in blocks:
        fitted.extend(_fit_block(block))
    if len(fitted) > MAX_BLOCKS:
        left_out = len(fitted) - (MAX_BLOCKS - 1)
        fitted = [
            *fitted[: MAX_BLOCKS - 1],
            {"type": "context", "elements": [_mrkdwn(f"{ELLIPSIS} {left_out} more not shown")]},
        ]
    return fitted


def _fit_text(obj: dict[str, Any], limit: int) -> dict[str, Any]:
    text = obj.get("text") or " "  # Slack rejects empty text objects
    return {**obj, "text": truncate(text, limit)}


def _fit_block(block: Block) -> list[Block]:
    kind = block.get("type")
    if kind == "header":
        return [{**block, "text": _fit_text(block["text"], MAX_HEADER_TEXT)}]
    if kind == "section":
        return _fit_section(block)
    if kind == "context":
        elements = list(block.get("elements", []))
        if len(elements) > MAX_CONTEXT_ELEMENTS:
            tail = elements[MAX_CONTEXT_ELEMENTS - 1 :]
            merged = " · ".join(e.get("text", "") for e in tail if "text" in e)
            elements = [*elements[: MAX_CONTEXT_ELEMENTS - 1], _mrkdwn(merged)]
        return [
            {
                **block,
                "elements": [
                    _fit_text(e, MAX_CONTEXT_TEXT) if "text" in e else e for e in elements
                ],
            }
        ]
    return [block]


def _fit_section(block: Block) -> list[Block]:
    section = dict(block)
    if "text" in section:
        section["text"] = _fit_text(section["text"], MAX_SECTION_TEXT)
    fields = [_fit_text(f, MAX_FIELD_TEXT) for f in section.pop("fields", [])]
    if not fields:
        return [section]
    chunks = [fields[i : i + MAX_SECTION_FIELDS] for i in range(0, len(fields), MAX_SECTION_FIELDS)]
    first = {**section, "fields": chunks[0]}
    return [first, *({"type": "section", "fields": chunk} for chunk in chunks[1:])]
