"""The run store's Alembic environment (``env.py``) and revisions (``versions/``).

flowcore runs Alembic itself (:func:`flowcore.runs.store` opens a database, compares its
revision with :data:`flowcore.runs.schema.HEAD` and upgrades it); nobody needs an
``alembic.ini``. The connection to migrate travels in ``Config.attributes["connection"]``,
already inside the transaction that holds the database's write lock, so that several
processes opening a new database at once migrate it once.

Each revision spells out its DDL rather than importing :mod:`flowcore.runs.schema`: the
tables module describes the newest schema, a revision one step of history.
"""
