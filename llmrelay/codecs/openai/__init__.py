"""OpenAI Chat Completions wire <-> the canonical model.

Pure functions over parsed JSON, one module per concern: :mod:`.request` (bodies both ways),
:mod:`.response` (``chat.completion`` both ways), :mod:`.stream` (``chat.completion.chunk``
both ways), :mod:`.errors` (error envelopes). Shapes follow the official ``openai`` SDK's
``types/chat/*``; every field's fate is a row of ``docs/translation.md``.
"""

from ._shared import Untranslatable
from .errors import error_from_openai, error_to_openai
from .request import encode_request
from .request_in import decode_request
from .response import decode_response, encode_response
from .stream import StreamDecoder, StreamEncoder

__all__ = [
    "StreamDecoder",
    "StreamEncoder",
    "Untranslatable",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "error_from_openai",
    "error_to_openai",
]
