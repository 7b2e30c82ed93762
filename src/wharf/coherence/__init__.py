"""Cache coherence, in one place: the change tokens every cached view of storage is checked
against (``generations``: per process, shared memory between the workers of a machine, or
Redis between machines), the caches checked against them (``caches``), and Redis's channel and
read barrier (``redis_tokens``, ``redis_subscription``).

Every writer of storage (the registry's services, the garbage collector, ``wharf check``)
changes the tokens through the same ``Generations`` after a durable write, so no reader on any
worker or instance serves what the write replaced.
"""
