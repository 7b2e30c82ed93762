"""The ``azure`` storage driver: Azure Blob Storage, laid out as Distribution's.

Modules, from the bottom: ``params`` (the ``storage: azure:`` parameters, which import no
SDK, so that a configuration is checked before workers start), ``client`` (the blob SDK in a
thread pool, retries, error translation, SAS signing), ``layout`` (paths to blob names, lease
blobs, block ids), ``blobs`` (the Azure operations), ``writer`` (staged blocks), ``reader``
(ranged, parallel reads), ``lease`` (Azure's blob leases, counted) and ``driver`` (the
StorageDriver). Only ``params`` is imported here; the factory imports ``driver``, and with it
the SDK, when ``storage.azure`` is configured.

Uncommitted files are block blobs with staged blocks, not append blobs (which Distribution
uses), measured and reasoned on 2 cores against Azurite 3.35 (in memory), pushing 256 MiB
in chunks of 16 and 64 MiB, each chunk a new writer that first learns what storage holds:

==============================  =============  =============
                                16 MiB chunks  64 MiB chunks
==============================  =============  =============
append blob, 4 MiB AppendBlock  133-221 MB/s   163-252 MB/s
block blob, 4 MiB x4 PutBlock   125-152 MB/s   137-184 MB/s
==============================  =============  =============

Azurite is one Node.js thread, so parallel blocks cannot help there and the two are close;
Azure spreads PutBlocks over its servers, where each AppendBlock is one more sequential
round trip. What decides is what each leaves in storage: staged blocks are invisible at the
file's name until committed (an append blob is visible, growing, from its first byte),
anything retried is safe (staging a block id again replaces it; an AppendBlock whose answer
was lost needs the content read back, as Distribution's MD5 check does), and any process
continues the file from GetBlockList alone, as it would from an append blob's length.

Client library, measured the same way (sync SDK with 16 threads against ``aio`` with
aiohttp; 128 MiB in 8 MiB blocks, 4 in flight; 16 MiB ranged GETs; 100-byte put+get pairs,
8 at a time; the event loop's longest stall while doing it): the same throughput (Azurite is
the bottleneck: 158-283 MB/s up, 359-616 MB/s down either way); uploads cost 0.71-0.91 ms of
client CPU per MiB in threads against 0.93-1.17 with aio, downloads 1.43-2.40 against
1.44-1.71; small operations 209-234 per second against 242-266 (aio 10-15% ahead); the
longest stall 16-44 ms against 28-116 ms. Threads won on what the registry pays for most:
client CPU per pushed byte on a machine the store shares, and the event loop, on which aio
runs the SDK's response handling; they also match the S3 driver and need no aiohttp.
"""

from wharf.storage.driver.azure.params import AzureParameters, parse_parameters

__all__ = ["AzureParameters", "parse_parameters"]
