"""Relation kinds and deletion sources: plain names, importable without SQLAlchemy (the CLI)."""

SNAPSHOT = "snapshot"
BACKUP = "backup"
SHELVE = "shelve"
VOLUME_SNAPSHOT = "volume_snapshot"
KINDS = (SNAPSHOT, BACKUP, SHELVE, VOLUME_SNAPSHOT)

#: ``provenance`` of every row the filter records: relayed with a confirmed
#: service token carrying a relations service role.
SERVICE_TOKEN_CONFIRMED = "service_token_confirmed"

#: ``deleted_via``: a DELETE relayed by a qualifying service token, one without,
#: or ``propguard relations reconcile`` finding the image gone from Glance.
VIA_SERVICE = "service"
VIA_USER = "user"
VIA_RECONCILE = "reconcile"
