-- SQLite's migration 0005 moves its history chunks to a rowid table; PostgreSQL's tables are
-- heaps with separate indexes already, so there is nothing to change here (the number is kept
-- so both backends stay at the same schema version).

SELECT 1;
