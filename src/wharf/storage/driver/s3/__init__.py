"""The ``s3`` storage driver: Amazon S3 and S3-compatible stores, laid out as Distribution's.

Modules, from the bottom: ``params`` (the ``storage: s3:`` parameters), ``client`` (botocore
in a thread pool, retries, error translation), ``layout`` (paths to keys, pending objects),
``bucket`` (the S3 operations), ``writer`` (resumable multipart uploads), ``reader`` (ranged,
parallel reads) and ``driver`` (the StorageDriver).

Client library, chosen by measurement on 2 cores over loopback (client CPU per MB in
brackets; both servers were the bottleneck, so throughput is a tie):

=========================  ==================  ==================  ===================
                           boto3, 16 threads   aiobotocore 3.10    server
=========================  ==================  ==================  ===================
PutObject 8 MiB x8, 4 par  152 MB/s (1.7 ms)   250 MB/s (2.5 ms)   moto 5.2
multipart 64 MiB, 4 par     54 MB/s (2.4 ms)    56 MB/s (2.0 ms)   moto 5.2
GET 64 MiB, one stream     870 MB/s (0.4 ms)   850 MB/s (0.4 ms)   moto 5.2
PutObject 8 MiB x8, 4 par   59-131 MB/s (1.8)  100-151 MB/s (2.6)  Swift 2.38 + s3api
multipart 64 MiB, 4 par    117-149 MB/s (2.1)   80-127 MB/s (2.4)  Swift 2.38 + s3api
GET 64 MiB, one stream     190-239 MB/s (1.2)  142-223 MB/s (0.9)  Swift 2.38 + s3api
small PUT+GET              119-169 ops/s       148-156 ops/s       moto 5.2
event-loop stall, 80 MiB   max 14-52 ms        max 46-144 ms       both
  multipart upload
=========================  ==================  ==================  ===================

boto3 (botocore) in a bounded pool won: equal speed, less CPU per uploaded byte, and
request signing (SHA-256 of each 10 MiB part over http) stays off the event loop, where
aiobotocore runs it inline and stalls every other request for milliseconds per part. It
also needs no second HTTP stack (aiohttp) nor aiobotocore's tight botocore pin.
"""

# The driver itself lives in ``wharf.storage.driver.s3.driver``: importing it imports boto3,
# which a start-up check of the parameters need not pay for.
from wharf.storage.driver.s3.params import S3Parameters, parse_parameters

__all__ = ["S3Parameters", "parse_parameters"]
