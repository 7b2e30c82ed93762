"""What operators watch: request context and ids, metrics, health checks, the debug listener.

The modules are imported where they are used; this package imports nothing, so that the
logging set-up can read the request context without pulling in the rest.
"""

__all__: list[str] = []
