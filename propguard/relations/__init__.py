"""Instance-image relations (not built yet: issue "Instance-image relations").

Planned home of: the relation model and its SQLAlchemy store with Alembic
migrations, the recorder the paste filter calls after a ``POST /v2/images``
relayed by a confirmed service token (identity from
:mod:`propguard.identity`), and the ``/v2/instances/{uuid}/images`` API.
"""
