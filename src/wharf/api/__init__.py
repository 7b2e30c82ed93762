"""The HTTP API: one module per resource, one error handler, a plain ASGI application."""
