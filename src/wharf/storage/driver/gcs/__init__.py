"""The ``gcs`` storage driver: Google Cloud Storage, laid out as Distribution's.

Modules, from the bottom: ``params`` (the ``storage: gcs:`` parameters, checked before
workers start, without network), ``client`` (the JSON API over httpx, tokens, retries, error
translation, V4 signing), ``layout`` (paths to object names, part and lease objects),
``objects`` (the GCS operations), ``writer`` (parts composed at commit), ``reader`` (one
stream, continued where it broke), ``lease`` (generation-conditional lease objects) and
``driver`` (the StorageDriver). Only ``params`` is imported here; the factory imports
``driver`` when ``storage.gcs`` is configured.

Measured on 2 cores against fake-gcs-server (in memory), 256 MiB, to choose with:

==========================================  ==========
google-cloud-storage, resumable, 16 MiB       44 MB/s
JSON API over httpx, resumable, 16 MiB        45 MB/s
httpx, 16 MiB parts x4 in flight, uploaded   261 MB/s
  the same, with the compose at the end       94 MB/s
httpx, 8 MiB parts x4, with the compose       94 MB/s
google-cloud-storage download                468 MB/s
httpx, one streamed GET                      497 MB/s
httpx, 16 MiB ranged GETs x4                 331 MB/s
==========================================  ==========

The emulator keeps a resumable session in memory and hashes all of it again on every chunk,
so sessions slow down as they grow; real GCS does not, but a session also cannot be read,
listed or purged, and takes only 256 KiB multiples until its end (see ``writer``). Parts
are ordinary objects: uploaded in parallel, found by any instance with one listing, deleted
with their upload directory. The SDK is blocking (a thread per call) and adds nothing the
JSON API needs here; httpx, already a dependency, keeps every request on the event loop,
and google-auth is used only to fetch tokens (not at all against an emulator).
"""

from wharf.storage.driver.gcs.params import GCSParameters, parse_parameters

__all__ = ["GCSParameters", "parse_parameters"]
