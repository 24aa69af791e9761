"""The PostgreSQL backend: many worker processes on many machines sharing one store.

``backend.py`` holds the driver (pool, transactions, LISTEN/NOTIFY, migrations),
``statements.py`` how a transaction's statements are sent, ``settings.py`` the URL options;
the SQL is in ``queries.sql`` and ``migrations/``; the storage logic itself is shared with SQLite in
:mod:`durable.storage.sql`. Deployment notes are in docs/scale-out.md.
"""
