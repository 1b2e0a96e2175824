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
