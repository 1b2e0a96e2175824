"""Issuer and audience of the JWT unit tests' tokens (a module, so tests never import conftest)."""

ISS = "https://idp.example/realms/openstack"
AUD = "glance"
