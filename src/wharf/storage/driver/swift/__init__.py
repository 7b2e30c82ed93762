"""The ``swift`` storage driver: OpenStack Swift's native API, laid out as Distribution 2.x's.

Modules, from the bottom: ``params`` (the ``storage: swift:`` parameters), ``client`` (httpx,
v1 authentication, retries, error translation), ``layout`` (paths to object names and
segments), ``objects`` (the Swift operations), ``writer`` (files as Dynamic Large Objects),
``reader`` and ``driver`` (the StorageDriver).

Client library: httpx's AsyncClient, already a dependency: Swift's API is plain HTTP with a
token, so no SDK (python-swiftclient is blocking and would need a thread per request) is
needed, and nothing blocks the event loop.
"""

from wharf.storage.driver.swift.params import SwiftParameters, parse_parameters

__all__ = ["SwiftParameters", "parse_parameters"]
