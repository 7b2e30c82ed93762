"""Fixtures for every test directory: the S3 servers (session-scoped, started on first use)."""

from tests.support.s3servers import moto_server, s3_server, swift_server

__all__ = ["moto_server", "s3_server", "swift_server"]
