"""wharf: a container registry implementing the OCI Distribution Specification v1.1."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wharf-registry")  # the distribution's name, not the package's
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
