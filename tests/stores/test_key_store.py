"""The KeyStore protocol, on every implementation (see conftest.py)."""

from __future__ import annotations

import threading

import pytest

from llmrelay.stores.database import Stores, open_stores
from llmrelay.stores.keys import (
    BudgetSpec,
    KeyEdit,
    KeyNameTaken,
    KeyRevoked,
    KeySecret,
    Limits,
    VirtualKey,
)


def key(i: int, name: str | None = None, **kw: object) -> VirtualKey:
    return VirtualKey(id=f"vk_{i}", name=name or f"key-{i}", created_at=1_700_000_000.0 + i, **kw)  # type: ignore[arg-type]


def secret(i: int, key_id: str | None = None, n: int = 0) -> KeySecret:
    return KeySecret(digest=bytes([i, n]) * 16, key_id=key_id or f"vk_{i}")


def test_create_get_list_round_trip_every_field(stores: Stores) -> None:
    full = VirtualKey(
        id="vk_full",
        name="dev ünïcode ✓ 日本",
        team="platform",
        models=("anthropic/claude", "openai/gpt-4o"),
        limits=Limits(rpm=60, rph=None, rpd=10_000, tpm=2**40, tph=None, tpd=None),
        budget=BudgetSpec(usd=12.5, period="week", mode="audit"),
        created_at=1_700_000_000.25,
        expires_at=1_800_000_000.5,
    )
    bare = key(2)
    stores.keys.create(full, KeySecret(b"\x00\xff" * 16, "vk_full"))
    stores.keys.create(bare, secret(2))
    assert stores.keys.get("vk_full") == full
    assert stores.keys.get("vk_2") == bare
    assert stores.keys.get("vk_nope") is None
    assert stores.keys.list() == [full, bare]  # oldest first


def test_create_existing_id_or_secret_raises_value_error(stores: Stores) -> None:
    stores.keys.create(key(1), secret(1))
    with pytest.raises(ValueError, match="vk_1"):
        stores.keys.create(key(1), secret(1, n=9))
    with pytest.raises(ValueError, match="secret"):
        stores.keys.create(key(2), secret(1, key_id="vk_2"))
    assert [k.id for k in stores.keys.list()] == ["vk_1"]
    # The failed writes left no trace, revision included.
    assert stores.keys.changed_since(0).revision == 1


def test_revoke_keeps_the_first_time_and_reports_missing_keys(stores: Stores) -> None:
    stores.keys.create(key(1), secret(1))
    assert stores.keys.revoke("vk_1", 1_750_000_000.0) is True
    assert stores.keys.revoke("vk_1", 1_760_000_000.0) is True
    revoked = stores.keys.get("vk_1")
    assert revoked is not None and revoked.revoked_at == 1_750_000_000.0
    assert stores.keys.revoke("vk_nope", 1.0) is False


def test_rotate_keeps_the_old_secret_until_its_grace_end(stores: Stores) -> None:
    stores.keys.create(key(1), secret(1))
    new = secret(1, n=1)
    assert stores.keys.rotate("vk_1", new, old_valid_until=1_750_000_000.0) is True
    secrets = {s.digest: s for s in stores.keys.changed_since(0).secrets}
    assert secrets == {
        secret(1).digest: KeySecret(secret(1).digest, "vk_1", 1_750_000_000.0),
        new.digest: new,
    }
    # Rotating again caps the newer secret but never extends the older one's grace.
    newest = secret(1, n=2)
    assert stores.keys.rotate("vk_1", newest, old_valid_until=1_760_000_000.0) is True
    expiries = {s.digest: s.expires_at for s in stores.keys.changed_since(0).secrets}
    assert expiries == {
        secret(1).digest: 1_750_000_000.0,
        new.digest: 1_760_000_000.0,
        newest.digest: None,
    }
    assert stores.keys.rotate("vk_nope", secret(9, "vk_nope"), old_valid_until=1.0) is False


def test_changed_since_zero_returns_every_key_with_all_its_secrets(stores: Stores) -> None:
    stores.keys.create(key(1), secret(1))
    stores.keys.create(key(2), secret(2))
    stores.keys.rotate("vk_2", secret(2, n=1), old_valid_until=2.0)
    changes = stores.keys.changed_since(0)
    assert [k.id for k in changes.keys] == ["vk_1", "vk_2"]
    assert sorted((s.key_id, s.digest) for s in changes.secrets) == sorted(
        [("vk_1", secret(1).digest), ("vk_2", secret(2).digest), ("vk_2", secret(2, n=1).digest)]
    )
    assert changes.revision == 3


def test_changed_since_returns_only_keys_written_after(stores: Stores) -> None:
    stores.keys.create(key(1), secret(1))
    stores.keys.create(key(2), secret(2))
    seen = stores.keys.changed_since(0).revision
    assert stores.keys.changed_since(seen).keys == []
    stores.keys.revoke("vk_1", 5.0)
    changes = stores.keys.changed_since(seen)
    assert [(k.id, k.revoked_at) for k in changes.keys] == [("vk_1", 5.0)]
    assert [s.key_id for s in changes.secrets] == ["vk_1"]
    assert changes.revision > seen
    assert stores.keys.changed_since(changes.revision).keys == []


def test_revision_grows_with_every_write(stores: Stores) -> None:
    revisions = [stores.keys.changed_since(0).revision]
    stores.keys.create(key(1), secret(1))
    revisions.append(stores.keys.changed_since(0).revision)
    stores.keys.rotate("vk_1", secret(1, n=1), 9.0)
    revisions.append(stores.keys.changed_since(0).revision)
    stores.keys.revoke("vk_1", 9.0)
    revisions.append(stores.keys.changed_since(0).revision)
    assert revisions == sorted(set(revisions)) and revisions[0] == 0


def test_a_revision_past_the_store_reads_everything(stores: Stores) -> None:
    # A cache that outlived its database (restored, or pointed elsewhere) starts over.
    stores.keys.create(key(1), secret(1))
    changes = stores.keys.changed_since(1000)
    assert [k.id for k in changes.keys] == ["vk_1"]
    assert changes.revision == 1


def test_a_second_store_on_the_database_sees_the_first_ones_writes(
    stores: Stores, db_url: str
) -> None:
    other = open_stores(db_url)
    try:
        start = other.keys.changed_since(0).revision
        stores.keys.create(key(1), secret(1))
        changes = other.keys.changed_since(start)
        assert [k.id for k in changes.keys] == ["vk_1"]
        other.keys.revoke("vk_1", 7.0)
        mine = stores.keys.changed_since(changes.revision)
        assert [(k.id, k.revoked_at) for k in mine.keys] == [("vk_1", 7.0)]
    finally:
        other.close()


def test_concurrent_writers_on_two_stores_get_distinct_revisions(
    stores: Stores, db_url: str
) -> None:
    other = open_stores(db_url)
    errors: list[BaseException] = []

    def create(store: Stores, first: int) -> None:
        try:
            for i in range(first, first + 10):
                store.keys.create(key(i), secret(i))
        except BaseException as err:
            errors.append(err)

    threads = [
        threading.Thread(target=create, args=(stores, 0)),
        threading.Thread(target=create, args=(other, 10)),
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        other.close()
    assert errors == []
    changes = stores.keys.changed_since(0)
    assert len(changes.keys) == 20 and changes.revision == 20
    # Reading from the middle returns exactly the later half of the writes.
    assert len(stores.keys.changed_since(10).keys) == 10


def test_a_name_is_unique_among_keys_that_are_not_revoked(stores: Stores) -> None:
    stores.keys.create(key(1, name="bob"), secret(1))
    with pytest.raises(KeyNameTaken, match="'bob' already exists \\(vk_1\\)") as err:
        stores.keys.create(key(2, name="bob"), secret(2))
    assert (err.value.name, err.value.key_id) == ("bob", "vk_1")
    # The refused write left no trace, revision included.
    assert [k.id for k in stores.keys.list()] == ["vk_1"]
    assert stores.keys.changed_since(0).revision == 1
    # An expired key keeps its name (its usage rows carry it); a revoked one frees it.
    stores.keys.create(key(3, name="old", expires_at=1.0), secret(3))
    with pytest.raises(KeyNameTaken, match="vk_3"):
        stores.keys.create(key(4, name="old"), secret(4))
    stores.keys.revoke("vk_1", 5.0)
    stores.keys.create(key(5, name="bob"), secret(5))
    assert [k.name for k in stores.keys.list() if k.revoked_at is None] == ["old", "bob"]


def test_concurrent_creates_of_one_name_let_exactly_one_through(
    stores: Stores, db_url: str
) -> None:
    other = open_stores(db_url)
    barrier = threading.Barrier(2)
    outcomes: dict[str, list[str]] = {}
    lock = threading.Lock()

    def create(store: Stores, first: int) -> None:
        barrier.wait()
        for i in range(10):
            try:
                store.keys.create(key(first + i, name=f"name-{i}"), secret(first + i))
                result = "created"
            except KeyNameTaken:
                result = "taken"
            with lock:
                outcomes.setdefault(f"name-{i}", []).append(result)

    threads = [
        threading.Thread(target=create, args=(stores, 0)),
        threading.Thread(target=create, args=(other, 100)),
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        other.close()
    assert {n: sorted(o) for n, o in outcomes.items()} == {
        f"name-{i}": ["created", "taken"] for i in range(10)
    }
    assert sorted(k.name for k in stores.keys.list()) == sorted(f"name-{i}" for i in range(10))


def test_update_changes_only_the_fields_it_names_and_bumps_the_revision(
    stores: Stores,
) -> None:
    original = key(
        1,
        team="core",
        models=("mock/echo",),
        limits=Limits(rpm=60, tpd=1_000),
        budget=BudgetSpec(usd=5.0),
        expires_at=1_800_000_000.0,
        allowed_accounts=("mock",),
    )
    stores.keys.create(original, secret(1))
    stores.keys.create(key(2), secret(2))
    before = stores.keys.changed_since(0).revision
    edited = stores.keys.update(
        "vk_1",
        KeyEdit(
            models=("mock/echo", "mock/other"),
            limits=Limits(rpm=5),
            clear_limits=frozenset({"tpd"}),
            budget=BudgetSpec(usd=9.5, period="day", mode="audit"),
        ),
    )
    expected = VirtualKey(
        id="vk_1",
        name="key-1",
        team="core",
        models=("mock/echo", "mock/other"),
        limits=Limits(rpm=5),
        budget=BudgetSpec(usd=9.5, period="day", mode="audit"),
        created_at=original.created_at,
        expires_at=1_800_000_000.0,
        allowed_accounts=("mock",),
    )
    assert edited == expected
    assert stores.keys.get("vk_1") == expected
    # Other instances' caches see the edit (with the key's secret) and nothing else.
    changes = stores.keys.changed_since(before)
    assert changes.revision == before + 1
    assert [k.id for k in changes.keys] == ["vk_1"] and changes.keys[0] == expected
    assert [s.digest for s in changes.secrets] == [secret(1).digest]


def test_update_can_remove_team_models_accounts_and_budget(stores: Stores) -> None:
    stores.keys.create(
        key(1, team="t", models=("a",), budget=BudgetSpec(usd=1.0), allowed_accounts=()),
        secret(1),
    )
    edited = stores.keys.update(
        "vk_1", KeyEdit(team=None, models=(), allowed_accounts=None, budget=None)
    )
    assert edited == key(1)
    assert stores.keys.get("vk_1") == key(1)


def test_update_of_a_missing_or_revoked_key_writes_nothing(stores: Stores) -> None:
    stores.keys.create(key(1), secret(1))
    stores.keys.revoke("vk_1", 1_750_000_000.0)
    revision = stores.keys.changed_since(0).revision
    assert stores.keys.update("vk_nope", KeyEdit(models=("a",))) is None
    with pytest.raises(KeyRevoked, match="vk_1"):
        stores.keys.update("vk_1", KeyEdit(models=("a",)))
    assert stores.keys.changed_since(0).revision == revision
    revoked = stores.keys.get("vk_1")
    assert revoked is not None and revoked.models == ()


def test_concurrent_edits_of_different_fields_both_stay(db_url: str) -> None:
    a, b = open_stores(db_url), open_stores(db_url)
    try:
        a.keys.create(key(1), secret(1))
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def edit(store: Stores, change: KeyEdit) -> None:
            try:
                barrier.wait(timeout=10)
                for _ in range(10):
                    store.keys.update("vk_1", change)
            except BaseException as err:
                errors.append(err)

        threads = [
            threading.Thread(target=edit, args=(a, KeyEdit(limits=Limits(rpm=7)))),
            threading.Thread(target=edit, args=(b, KeyEdit(models=("m",)))),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert errors == []
        final = a.keys.get("vk_1")
        assert final is not None and final.limits == Limits(rpm=7) and final.models == ("m",)
        assert a.keys.changed_since(0).revision == 21
    finally:
        a.close()
        b.close()
