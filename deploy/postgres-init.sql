-- Run once by the postgres container on an empty data volume (compose.yml).
-- The tracker store and the account store are separate databases: they can
-- move to separate servers later. pg_trgm serves the console's message search.
CREATE DATABASE supportbot_tracker;
CREATE DATABASE supportbot_accounts;
\connect supportbot_tracker
CREATE EXTENSION IF NOT EXISTS pg_trgm;
