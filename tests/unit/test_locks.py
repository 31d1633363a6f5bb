"""`KeyedLocks`: one lock per key while it is in use, keys compared as the caller normalizes them."""

from __future__ import annotations

import asyncio
import gc
import weakref

from azure_identity_operator.locks import KeyedLocks, arm_id_key

VM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"


def test_equal_keys_share_a_lock_and_arm_ids_compare_without_case_or_trailing_slash() -> None:
    locks = KeyedLocks(arm_id_key)
    held = locks.lock(VM)
    assert locks.lock(VM.upper() + "/") is held
    assert locks.lock(VM + "2") is not held


def test_a_lock_nobody_holds_is_dropped() -> None:
    locks = KeyedLocks()
    dropped = weakref.ref(locks.lock("a"))
    gc.collect()
    assert dropped() is None


def test_work_under_one_key_is_serialized_and_other_keys_run_beside_it() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def work(key: str, label: str, pause: float) -> None:
        async with locks.lock(key):
            order.append(f"{label} start")
            await asyncio.sleep(pause)
            order.append(f"{label} end")

    async def main() -> None:
        await asyncio.gather(work("x", "a", 0.05), work("x", "b", 0), work("y", "c", 0))

    asyncio.run(main())
    assert order.index("a end") < order.index("b start")
    assert order.index("c end") < order.index("a end")
