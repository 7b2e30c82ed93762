"""The key that signs upload URLs when the configuration has no ``http.secret``.

Distribution then signs with a random key of each start, so a restart, or a second instance
behind the same address, refuses every upload URL given out before. wharf keeps a random key
in the storage instead, which every worker and instance sharing the storage reads: whoever
finds none writes one under a random name of its own, then all take the key whose name sorts
first, so processes that start together agree without a lock. Anyone who can read the storage
can read the key; such a reader could forge URLs for upload sessions, which change nothing
but sessions (every blob is verified before it is stored). ``http.secret`` keeps it out of the
storage.
"""

from __future__ import annotations

import secrets

from wharf.storage import paths
from wharf.storage.driver import PathNotFound, StorageDriver

__all__ = ["stored_upload_key"]


async def _names(driver: StorageDriver) -> list[str]:
    try:
        return sorted(await driver.list(paths.upload_keys_dir()))
    except PathNotFound:
        return []


async def stored_upload_key(driver: StorageDriver) -> bytes:
    names = await _names(driver)
    if not names:
        name = f"{paths.upload_keys_dir()}/{secrets.token_hex(16)}"
        await driver.put_content(name, secrets.token_hex(32).encode())
        names = await _names(driver)
    return await driver.get_content(names[0])
