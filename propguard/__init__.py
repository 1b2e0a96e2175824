"""propguard: property protection and policy sidecar for OpenStack Glance v2."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("propguard")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"  # setuptools-scm's fallback_version (docs/releasing.md)
