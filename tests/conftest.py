"""Root of the test tree.

Being a ``conftest.py`` in ``tests/``, this file makes pytest (default
``prepend`` import mode, no ``__init__.py`` anywhere under ``tests/``) put
``tests/`` on ``sys.path``, so every test module can ``import data_paths``,
the one place that names the shared test data. Module basenames must stay
unique across ``tests/``.
"""
