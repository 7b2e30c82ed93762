"""A registry client for any registry speaking the Docker Registry HTTP API V2 / OCI
Distribution: wharf, Distribution, Docker Hub, zot, Harbor, ...

::

    from wharf.client import RegistryClient, DockerConfig

    with RegistryClient("https://registry.example.com", credentials=DockerConfig()) as client:
        manifest = client.get_manifest("library/alpine", "3.20")
        client.push_blob("team/app", b"some bytes")

:class:`AsyncRegistryClient` is the same for asyncio; ``copy`` copies images between
registries and OCI layout directories.
"""

from wharf.client.copy import LayoutImage, RegistryImage, copy
from wharf.client.credentials import CredentialHelper, Credentials, DockerConfig, Login, static
from wharf.client.errors import DigestMismatch, RegistryClientError, ResponseError
from wharf.client.layout import OCILayout
from wharf.client.registry import MANIFEST_TYPES, AsyncRegistryClient, Manifest
from wharf.client.sync import RegistryClient

__all__ = [
    "MANIFEST_TYPES",
    "AsyncRegistryClient",
    "CredentialHelper",
    "Credentials",
    "DigestMismatch",
    "DockerConfig",
    "LayoutImage",
    "Login",
    "Manifest",
    "OCILayout",
    "RegistryClient",
    "RegistryClientError",
    "RegistryImage",
    "ResponseError",
    "copy",
    "static",
]
