"""The admin key is presented as gateway keys are: ``x-api-key`` or ``Authorization:
Bearer``, every one the admin key if several are sent (repeated headers too); an
``Authorization`` header of another scheme is a 401, not ignored (it was, beside an
``x-api-key`` carrying the admin key, and a second ``x-api-key`` was never read)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from multidict import CIMultiDict

from tests.conftest import ALICE_KEY
from tests.pipeline.inprocess import gateway_in_process

ADMIN_KEY = "adm-test-admin-0123456789abcdef"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"x-api-key": ADMIN_KEY}, 200),
        ({"authorization": f"Bearer {ADMIN_KEY}"}, 200),
        ({"authorization": f"bearer  {ADMIN_KEY} "}, 200),
        ({"x-api-key": ADMIN_KEY, "authorization": f"Bearer {ADMIN_KEY}"}, 200),
        ({"x-api-key": ADMIN_KEY, "authorization": f"Basic {ADMIN_KEY}"}, 401),
        ({"x-api-key": ADMIN_KEY, "authorization": f"Token {ALICE_KEY}"}, 401),
        ({"x-api-key": ADMIN_KEY, "authorization": "Bearer "}, 401),
        ({"x-api-key": ADMIN_KEY, "authorization": f"Bearer {ALICE_KEY}"}, 401),
        ({"x-api-key": ALICE_KEY}, 401),
        ({}, 401),
        ([("x-api-key", ADMIN_KEY), ("x-api-key", ADMIN_KEY)], 200),
        ([("x-api-key", ADMIN_KEY), ("x-api-key", ALICE_KEY)], 401),
        ([("authorization", f"Bearer {ADMIN_KEY}"), ("authorization", "Basic x")], 401),
    ],
)
def test_an_authorization_header_that_is_not_bearer_is_a_401_even_beside_the_admin_key(
    tmp_path: Path, headers: dict[str, str] | list[tuple[str, str]], status: int
) -> None:
    import aiohttp

    async def main() -> int:
        async with (
            gateway_in_process(tmp_path, admin={"key": ADMIN_KEY}) as gw,
            aiohttp.ClientSession() as session,
            session.get(gw.url + "/admin/keys", headers=CIMultiDict(headers)) as resp,
        ):
            body = await resp.json()
            if resp.status == 401:
                assert body["error"]["type"] == "authentication_error"
            return resp.status

    assert asyncio.run(main()) == status
