-- Activity tasks carry their orchestration's version, so a worker leaves the activities of an
-- instance version it does not run to a worker that does (durable/versioning.py).

ALTER TABLE tasks ADD COLUMN version TEXT;
