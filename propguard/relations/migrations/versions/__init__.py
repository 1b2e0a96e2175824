"""Migrations of the relations store, oldest first (see ``propguard.relations.store``)."""
