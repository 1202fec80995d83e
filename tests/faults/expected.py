"""What each fault does to a call, cell by cell: the data ``test_matrix.py`` checks and
``docs/faults.md`` shows.

A cell is a fault (``catalogue.py``), the answer's mode (``json``, ``stream``), the
provider wire and the client's surface (``anthropic``: the Anthropic SDK on ``/v1/messages``;
``openai``: the OpenAI SDK on ``/v1/chat/completions``). Where the wire and the surface are
the same family the call is a passthrough, otherwise a translation.

``client gets`` is one of:

* ``answer``: the SDK returns the answer (HTTP 200);
* ``<status> <error type>``: the SDK raises its status error; the body is the surface's JSON
  error envelope (OpenAI's carries the Anthropic error type as ``code``);
* ``stream error <error type>``: a 200 stream that ends with the surface's error (Anthropic:
  ``event: error``, which the SDK raises as ``APIStatusError``; OpenAI: an error chunk, which
  the SDK raises as ``APIError``, then ``data: [DONE]``);
* ``SDK JSON error``: a passthrough relayed the provider's bytes as they were; the SDK fails
  to parse them (``json.JSONDecodeError``).

``usage row`` is its status, its ``error_type`` (``-`` for none) and input/output tokens.
Every error message names the provider account (``'<wire>'``, the account is named for its
wire) and contains ``message says``.

``XFAIL`` lists the cells the gateway gets wrong today, with the finding; their expectations
above are what is right.
"""

# ruff: noqa: E501
from __future__ import annotations

__all__ = ["EXPECTED_TABLE", "XFAIL"]

EXPECTED_TABLE = """
| fault          | mode   | wire      | surface   | client gets                | usage row             | message says                                                     |
|----------------|--------|-----------|-----------|----------------------------|-----------------------|------------------------------------------------------------------|
| mid_close      | json   | anthropic | anthropic | 502 api_error              | 502 api_error 0/0     | closed the connection mid-response                               |
| mid_close      | json   | anthropic | openai    | 502 api_error              | 502 api_error 0/0     | closed the connection mid-response                               |
| mid_close      | json   | openai    | anthropic | 502 api_error              | 502 api_error 0/0     | closed the connection mid-response                               |
| mid_close      | json   | openai    | openai    | 502 api_error              | 502 api_error 0/0     | closed the connection mid-response                               |
| mid_close      | json   | bedrock   | anthropic | 502 api_error              | 502 api_error 0/0     | closed the connection mid-response                               |
| mid_close      | json   | bedrock   | openai    | 502 api_error              | 502 api_error 0/0     | closed the connection mid-response                               |
| mid_close      | json   | vertex    | anthropic | 502 api_error              | 502 api_error 0/0     | closed the connection mid-response                               |
| mid_close      | json   | vertex    | openai    | 502 api_error              | 502 api_error 0/0     | closed the connection mid-response                               |
| mid_close      | stream | anthropic | anthropic | stream error api_error     | 200 api_error 7/1     | closed the connection mid-response                               |
| mid_close      | stream | anthropic | openai    | stream error api_error     | 200 api_error 7/1     | closed the connection mid-response                               |
| mid_close      | stream | openai    | anthropic | stream error api_error     | 200 api_error 9/1     | closed the connection mid-response                               |
| mid_close      | stream | openai    | openai    | stream error api_error     | 200 api_error 0/1     | closed the connection mid-response                               |
| mid_close      | stream | bedrock   | anthropic | stream error api_error     | 200 api_error 7/1     | closed the connection mid-response                               |
| mid_close      | stream | bedrock   | openai    | stream error api_error     | 200 api_error 7/1     | closed the connection mid-response                               |
| mid_close      | stream | vertex    | anthropic | stream error api_error     | 200 api_error 7/1     | closed the connection mid-response                               |
| mid_close      | stream | vertex    | openai    | stream error api_error     | 200 api_error 7/1     | closed the connection mid-response                               |
| garbage_bytes  | stream | anthropic | anthropic | stream error api_error     | 200 api_error 7/1     | ended the stream before message_stop                             |
| garbage_bytes  | stream | anthropic | openai    | stream error api_error     | 200 api_error 7/1     | ended the stream before message_stop                             |
| garbage_bytes  | stream | openai    | anthropic | stream error api_error     | 200 api_error 9/0     | a stream that ended before [DONE]                                |
| garbage_bytes  | stream | openai    | openai    | stream error api_error     | 200 api_error 0/0     | ended the stream before [DONE]                                   |
| garbage_bytes  | stream | bedrock   | anthropic | stream error api_error     | 200 api_error 7/1     | sent an event-stream frame of                                    |
| garbage_bytes  | stream | bedrock   | openai    | stream error api_error     | 200 api_error 7/1     | sent an event-stream frame of                                    |
| garbage_bytes  | stream | vertex    | anthropic | stream error api_error     | 200 api_error 7/1     | ended the stream before message_stop                             |
| garbage_bytes  | stream | vertex    | openai    | stream error api_error     | 200 api_error 7/1     | ended the stream before message_stop                             |
| garbage_data   | stream | anthropic | anthropic | SDK JSON error             | 200 - 7/3             |                                                                  |
| garbage_data   | stream | anthropic | openai    | stream error api_error     | 200 api_error 7/1     | sent a stream event whose data is not JSON                       |
| garbage_data   | stream | openai    | anthropic | stream error api_error     | 200 api_error 9/1     | sent a stream event whose data is not JSON                       |
| garbage_data   | stream | openai    | openai    | SDK JSON error             | 200 - 7/3             |                                                                  |
| garbage_data   | stream | bedrock   | anthropic | stream error api_error     | 200 api_error 7/1     | sent an event-stream chunk whose event is not a JSON object      |
| garbage_data   | stream | bedrock   | openai    | stream error api_error     | 200 api_error 7/1     | sent an event-stream chunk whose event is not a JSON object      |
| garbage_data   | stream | vertex    | anthropic | SDK JSON error             | 200 - 7/3             |                                                                  |
| garbage_data   | stream | vertex    | openai    | stream error api_error     | 200 api_error 7/1     | sent a stream event whose data is not JSON                       |
| never_ending   | stream | anthropic | anthropic | stream error api_error     | 200 api_error 7/1     | sent an SSE event larger than 52428 bytes                        |
| never_ending   | stream | anthropic | openai    | stream error api_error     | 200 api_error 7/1     | sent an SSE event larger than 52428 bytes                        |
| never_ending   | stream | openai    | anthropic | stream error api_error     | 200 api_error 9/0     | sent an SSE event larger than 52428 bytes                        |
| never_ending   | stream | openai    | openai    | stream error api_error     | 200 api_error 0/0     | sent an SSE event larger than 52428 bytes                        |
| never_ending   | stream | bedrock   | anthropic | stream error api_error     | 200 api_error 7/1     | larger than an event of 52428 bytes needs                        |
| never_ending   | stream | bedrock   | openai    | stream error api_error     | 200 api_error 7/1     | larger than an event of 52428 bytes needs                        |
| never_ending   | stream | vertex    | anthropic | stream error api_error     | 200 api_error 7/1     | sent an SSE event larger than 52428 bytes                        |
| never_ending   | stream | vertex    | openai    | stream error api_error     | 200 api_error 7/1     | sent an SSE event larger than 52428 bytes                        |
| trickle        | json   | anthropic | anthropic | 504 timeout_error          | 504 timeout_error 0/0 | did not answer within 1.5s (timeouts.total_s)                    |
| trickle        | json   | anthropic | openai    | 504 timeout_error          | 504 timeout_error 0/0 | did not answer within 1.5s (timeouts.total_s)                    |
| trickle        | json   | openai    | anthropic | 504 timeout_error          | 504 timeout_error 0/0 | did not answer within 1.5s (timeouts.total_s)                    |
| trickle        | json   | openai    | openai    | 504 timeout_error          | 504 timeout_error 0/0 | did not answer within 1.5s (timeouts.total_s)                    |
| trickle        | json   | bedrock   | anthropic | 504 timeout_error          | 504 timeout_error 0/0 | did not answer within 1.5s (timeouts.total_s)                    |
| trickle        | json   | bedrock   | openai    | 504 timeout_error          | 504 timeout_error 0/0 | did not answer within 1.5s (timeouts.total_s)                    |
| trickle        | json   | vertex    | anthropic | 504 timeout_error          | 504 timeout_error 0/0 | did not answer within 1.5s (timeouts.total_s)                    |
| trickle        | json   | vertex    | openai    | 504 timeout_error          | 504 timeout_error 0/0 | did not answer within 1.5s (timeouts.total_s)                    |
| trickle        | stream | anthropic | anthropic | stream error timeout_error | 200 timeout_error 0/0 | the call took longer than 1.5s (timeouts.total_s of provider     |
| trickle        | stream | anthropic | openai    | stream error timeout_error | 200 timeout_error 0/0 | the call took longer than 1.5s (timeouts.total_s of provider     |
| trickle        | stream | openai    | anthropic | stream error timeout_error | 200 timeout_error 0/0 | the call took longer than 1.5s (timeouts.total_s of provider     |
| trickle        | stream | openai    | openai    | stream error timeout_error | 200 timeout_error 0/0 | the call took longer than 1.5s (timeouts.total_s of provider     |
| trickle        | stream | bedrock   | anthropic | 504 timeout_error          | 504 timeout_error 0/0 | did not answer within 1.5s (timeouts.total_s)                    |
| trickle        | stream | bedrock   | openai    | 504 timeout_error          | 504 timeout_error 0/0 | did not answer within 1.5s (timeouts.total_s)                    |
| trickle        | stream | vertex    | anthropic | stream error timeout_error | 200 timeout_error 0/0 | the call took longer than 1.5s (timeouts.total_s of provider     |
| trickle        | stream | vertex    | openai    | stream error timeout_error | 200 timeout_error 0/0 | the call took longer than 1.5s (timeouts.total_s of provider     |
| wrong_shape    | json   | anthropic | anthropic | answer                     | 200 - 7/3             |                                                                  |
| wrong_shape    | json   | anthropic | openai    | 502 api_error              | 502 api_error 0/0     | sent a malformed response: content: expected a list              |
| wrong_shape    | json   | openai    | anthropic | 502 api_error              | 502 api_error 0/0     | sent a malformed response: choices: expected a list              |
| wrong_shape    | json   | openai    | openai    | answer                     | 200 - 7/3             |                                                                  |
| wrong_shape    | json   | bedrock   | anthropic | answer                     | 200 - 7/3             |                                                                  |
| wrong_shape    | json   | bedrock   | openai    | 502 api_error              | 502 api_error 0/0     | sent a malformed response: content: expected a list              |
| wrong_shape    | json   | vertex    | anthropic | answer                     | 200 - 7/3             |                                                                  |
| wrong_shape    | json   | vertex    | openai    | 502 api_error              | 502 api_error 0/0     | sent a malformed response: content: expected a list              |
| wrong_shape    | stream | anthropic | anthropic | answer                     | 200 - 7/3             |                                                                  |
| wrong_shape    | stream | anthropic | openai    | stream error api_error     | 200 api_error 7/1     | sent a malformed stream event: content_block_delta.index         |
| wrong_shape    | stream | openai    | anthropic | stream error api_error     | 200 api_error 9/0     | sent a malformed stream chunk: choices: expected a list          |
| wrong_shape    | stream | openai    | openai    | answer                     | 200 - 7/3             |                                                                  |
| wrong_shape    | stream | bedrock   | anthropic | answer                     | 200 - 7/3             |                                                                  |
| wrong_shape    | stream | bedrock   | openai    | stream error api_error     | 200 api_error 7/1     | sent a malformed stream event: content_block_delta.index         |
| wrong_shape    | stream | vertex    | anthropic | answer                     | 200 - 7/3             |                                                                  |
| wrong_shape    | stream | vertex    | openai    | stream error api_error     | 200 api_error 7/1     | sent a malformed stream event: content_block_delta.index         |
| non_json_200   | json   | anthropic | anthropic | 502 api_error              | 502 api_error 0/0     | answered with a 200 that is not a JSON object                    |
| non_json_200   | json   | anthropic | openai    | 502 api_error              | 502 api_error 0/0     | sent a 200 response whose body is not JSON                       |
| non_json_200   | json   | openai    | anthropic | 502 api_error              | 502 api_error 0/0     | sent a 200 response whose body is not JSON                       |
| non_json_200   | json   | openai    | openai    | 502 api_error              | 502 api_error 0/0     | answered with a 200 that is not a JSON object                    |
| non_json_200   | json   | bedrock   | anthropic | 502 api_error              | 502 api_error 0/0     | answered with a 200 that is not a JSON object                    |
| non_json_200   | json   | bedrock   | openai    | 502 api_error              | 502 api_error 0/0     | sent a 200 response whose body is not JSON                       |
| non_json_200   | json   | vertex    | anthropic | 502 api_error              | 502 api_error 0/0     | answered with a 200 that is not a JSON object                    |
| non_json_200   | json   | vertex    | openai    | 502 api_error              | 502 api_error 0/0     | sent a 200 response whose body is not JSON                       |
| non_json_200   | stream | anthropic | anthropic | 502 api_error              | 502 api_error 0/0     | answered a stream request with a 200 that is not an event stream |
| non_json_200   | stream | anthropic | openai    | 502 api_error              | 502 api_error 0/0     | sent a 200 response whose body is not JSON                       |
| non_json_200   | stream | openai    | anthropic | 502 api_error              | 502 api_error 0/0     | sent a 200 response whose body is not JSON                       |
| non_json_200   | stream | openai    | openai    | 502 api_error              | 502 api_error 0/0     | answered a stream request with a 200 that is not an event stream |
| non_json_200   | stream | bedrock   | anthropic | 502 api_error              | 502 api_error 0/0     |                                                                  |
| non_json_200   | stream | bedrock   | openai    | 502 api_error              | 502 api_error 0/0     |                                                                  |
| non_json_200   | stream | vertex    | anthropic | 502 api_error              | 502 api_error 0/0     | answered a stream request with a 200 that is not an event stream |
| non_json_200   | stream | vertex    | openai    | 502 api_error              | 502 api_error 0/0     | sent a 200 response whose body is not JSON                       |
| negative_usage | json   | anthropic | anthropic | answer                     | 200 - 0/0             |                                                                  |
| negative_usage | json   | anthropic | openai    | answer                     | 200 - 0/0             |                                                                  |
| negative_usage | json   | openai    | anthropic | answer                     | 200 - 0/0             |                                                                  |
| negative_usage | json   | openai    | openai    | answer                     | 200 - 0/0             |                                                                  |
| negative_usage | json   | bedrock   | anthropic | answer                     | 200 - 0/0             |                                                                  |
| negative_usage | json   | bedrock   | openai    | answer                     | 200 - 0/0             |                                                                  |
| negative_usage | json   | vertex    | anthropic | answer                     | 200 - 0/0             |                                                                  |
| negative_usage | json   | vertex    | openai    | answer                     | 200 - 0/0             |                                                                  |
| negative_usage | stream | anthropic | anthropic | answer                     | 200 - 0/0             |                                                                  |
| negative_usage | stream | anthropic | openai    | answer                     | 200 - 0/0             |                                                                  |
| negative_usage | stream | openai    | anthropic | answer                     | 200 - 9/0             |                                                                  |
| negative_usage | stream | openai    | openai    | answer                     | 200 - 0/0             |                                                                  |
| negative_usage | stream | bedrock   | anthropic | answer                     | 200 - 0/0             |                                                                  |
| negative_usage | stream | bedrock   | openai    | answer                     | 200 - 0/0             |                                                                  |
| negative_usage | stream | vertex    | anthropic | answer                     | 200 - 0/0             |                                                                  |
| negative_usage | stream | vertex    | openai    | answer                     | 200 - 0/0             |                                                                  |
"""

_BEDROCK_FRAMES = (
    "providers/bedrock/client.py builds SSEFromEventStream() without the account or "
    "server.max_sse_event_mb, so its errors say 'provider' instead of naming the account"
)
XFAIL: dict[tuple[str, str, str, str], str] = {}
