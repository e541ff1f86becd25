"""Page tokens for the `/errors` and `/imports` listings.

A token is opaque to clients (base64 of `offset:<n>`); an unreadable token is a 400.
The last page carries no `next_page_token`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import TypeVar

from fullstory_sandbox.messages import ApiError, JsonObject

T = TypeVar("T")


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def decode_token(token: str | None) -> int:
    """The offset a token stands for; 0 for a missing or empty token."""
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        label, _, number = text.partition(":")
        offset = int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "invalid_argument", "page_token is not valid") from exc
    if label != "offset" or offset < 0:
        raise ApiError(400, "invalid_argument", "page_token is not valid")
    return offset


def page(items: Sequence[T], token: str | None, size: int) -> tuple[Sequence[T], JsonObject]:
    """One page of `items` from `token`, and the paging fields of the answer:
    `total_records` (a string, as FullStory sends int64) and `next_page_token` when more remain."""
    offset = decode_token(token)
    chunk = items[offset : offset + size]
    fields: JsonObject = {"total_records": str(len(items))}
    if offset + size < len(items):
        fields["next_page_token"] = encode_token(offset + size)
    return chunk, fields
