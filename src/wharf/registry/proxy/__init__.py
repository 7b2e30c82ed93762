"""The pull-through cache: repositories that mirror an upstream registry.

``routes`` decides which repositories mirror which upstream; ``upstream`` and ``auth`` speak
to the upstream; ``services`` decorates a mirrored repository's services so that what the
cache lacks is fetched (``fetch``: once, verified, streamed meanwhile); ``expiry`` removes
what is no longer pulled.
"""
