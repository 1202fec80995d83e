"""Anthropic Messages wire <-> the canonical model.

Pure functions over parsed JSON. Field names and shapes follow the Anthropic SDK:
``types/message_create_params.py`` (request), ``types/message.py`` (response),
``types/raw_message_stream_event.py`` (stream). Unknown fields go to ``extra`` on decode and
come back on encode, so ``encode(decode(x)) == x`` for every well-formed request (a string
``content`` comes back as one text block, which means the same).
"""

from .blocks import CodecError, decode_block, encode_block
from .request import decode_request, encode_request
from .response import decode_response, decode_usage, encode_response, encode_usage
from .stream import decode_event, encode_event

__all__ = [
    "CodecError",
    "decode_block",
    "decode_event",
    "decode_request",
    "decode_response",
    "decode_usage",
    "encode_block",
    "encode_event",
    "encode_request",
    "encode_response",
    "encode_usage",
]
