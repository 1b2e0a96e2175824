"""propguard: property protection and policy sidecar for OpenStack Glance v2."""

__version__ = "0.1.0"
