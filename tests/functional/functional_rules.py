"""Rule texts shared by the functional test modules (reference: glance-property-protections.md)."""

#: The five property sections of reference §2.4 (Glance's verified PATCH
#: matrix): owner-writable, unreadable, read-only, undeletable, blind-write.
REFERENCE_2_4_SECTIONS = """\
[^x_owner_.*]
create = admin,member
read = admin,member
update = admin,member
delete = admin,member

[x_none_read]
create = admin,member
read = !
update = !
delete = !

[x_ro]
create = admin
read = admin,member
update = admin
delete = admin

[x_nodel]
create = admin,member
read = admin,member
update = admin,member
delete = !

[x_blind]
create = admin,member
read = admin
update = admin
delete = admin

"""

#: Glance's usual last section: everything else is the admin's.
ADMIN_CATCH_ALL = """\
[.*]
create = admin
read = admin
update = admin
delete = admin
"""

#: Attributes of Glance 33's image schema: everything else in an image body is
#: an extra property, i.e. subject to the rules. Written out here, not taken
#: from propguard.glance, so that the tests check the filter's own list.
IMAGE_ATTRIBUTES = frozenset(
    {
        "checksum",
        "container_format",
        "created_at",
        "direct_url",
        "disk_format",
        "file",
        "id",
        "locations",
        "min_disk",
        "min_ram",
        "name",
        "os_hash_algo",
        "os_hash_value",
        "os_hidden",
        "owner",
        "protected",
        "schema",
        "self",
        "size",
        "status",
        "stores",
        "tags",
        "updated_at",
        "virtual_size",
        "visibility",
    }
)
