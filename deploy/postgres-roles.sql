-- Least-privilege database roles: each service logs in as its own role and can
-- reach only the database(s) it uses, with only the rights it needs.
-- Run by psql as the owner of both databases (compose: postgres-roles.sh, once,
-- on an empty data volume), with these variables:
--   prefix         role name prefix (supportbot_)
--   owner          the role that runs `python -m accounts migrate` and owns the account tables
--   tracker_db     the tracker store's database        accounts_db   the account store's database
--   rasa_password, actions_password, chatpage_password, console_password,
--   mail_password, helpdesk_password, scheduler_password one password per service
--
--   service    tracker store              account store
--   rasa       owns its tables (group)    read/write rows (hand-over release)
--   console    owns its tables (group)    read/write rows (support requests)
--   actions    -                          read/write rows
--   chatpage   -                          read/write rows (TFA enrolment pages)
--   mail       -                          read/write rows (outbox)
--   helpdesk   -                          read/write rows (support requests)
--   scheduler  its tables (group)         read/write rows (closures, purges)
-- Nobody but the owner changes the account store's schema; nobody but Rasa, the
-- console and the scheduler connects to the tracker store. The tracker store's
-- migrations (`python -m tracking migrate`) run as the owner acting as the
-- tracker group, so every member can use what they create.
\set ON_ERROR_STOP on
\set tracker_role :prefix 'tracker_owner'
\set accounts_role :prefix 'accounts_rw'
\set rasa_role :prefix 'rasa'
\set console_role :prefix 'console'
\set actions_role :prefix 'actions'
\set chatpage_role :prefix 'chatpage'
\set mail_role :prefix 'mail'
\set helpdesk_role :prefix 'helpdesk'
\set scheduler_role :prefix 'scheduler'

-- group roles (no login) that hold the rights
CREATE ROLE :"tracker_role" NOLOGIN;
CREATE ROLE :"accounts_role" NOLOGIN;

-- one login role per service
CREATE ROLE :"rasa_role" LOGIN PASSWORD :'rasa_password' IN ROLE :"tracker_role", :"accounts_role";
CREATE ROLE :"console_role" LOGIN PASSWORD :'console_password' IN ROLE :"tracker_role", :"accounts_role";
CREATE ROLE :"actions_role" LOGIN PASSWORD :'actions_password' IN ROLE :"accounts_role";
CREATE ROLE :"chatpage_role" LOGIN PASSWORD :'chatpage_password' IN ROLE :"accounts_role";
CREATE ROLE :"mail_role" LOGIN PASSWORD :'mail_password' IN ROLE :"accounts_role";
CREATE ROLE :"helpdesk_role" LOGIN PASSWORD :'helpdesk_password' IN ROLE :"accounts_role";
CREATE ROLE :"scheduler_role" LOGIN PASSWORD :'scheduler_password' IN ROLE :"tracker_role", :"accounts_role";
GRANT :"tracker_role" TO :"owner";

REVOKE ALL ON DATABASE :"tracker_db" FROM PUBLIC;
REVOKE ALL ON DATABASE :"accounts_db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"tracker_db" TO :"tracker_role";
GRANT CONNECT ON DATABASE :"accounts_db" TO :"accounts_role";
-- Rasa and the console both create the tracker store's tables when missing:
-- they do it as the group, so either can use what the other created.
ALTER ROLE :"rasa_role" IN DATABASE :"tracker_db" SET role = :'tracker_role';
ALTER ROLE :"console_role" IN DATABASE :"tracker_db" SET role = :'tracker_role';
ALTER ROLE :"scheduler_role" IN DATABASE :"tracker_db" SET role = :'tracker_role';
ALTER ROLE :"owner" IN DATABASE :"tracker_db" SET role = :'tracker_role';

\connect :"tracker_db"
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"tracker_role";

\connect :"accounts_db"
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"accounts_role";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"accounts_role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"accounts_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"accounts_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"accounts_role";
