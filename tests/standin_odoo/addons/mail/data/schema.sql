CREATE TABLE mail_message (
    id serial PRIMARY KEY,
    subject varchar,
    body text,
    model varchar,
    res_id integer,
    author_id integer REFERENCES res_partner(id) ON DELETE SET NULL,
    email_from varchar,
    message_type varchar NOT NULL DEFAULT 'comment',
    date timestamp DEFAULT (now() at time zone 'UTC')
);
CREATE TABLE mail_mail (
    id serial PRIMARY KEY,
    mail_message_id integer NOT NULL REFERENCES mail_message(id) ON DELETE CASCADE,
    body_html text,
    email_to text,
    email_cc varchar,
    state varchar DEFAULT 'outgoing'
);
CREATE TABLE mail_tracking_value (
    id serial PRIMARY KEY,
    mail_message_id integer NOT NULL REFERENCES mail_message(id) ON DELETE CASCADE,
    old_value_char varchar,
    new_value_char varchar
);
CREATE TABLE fetchmail_server (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    server varchar,
    port integer,
    "user" varchar,
    password varchar,
    active boolean DEFAULT true,
    state varchar DEFAULT 'draft'
);
WITH c AS (
    INSERT INTO ir_cron (cron_name, interval_number, interval_type)
    VALUES ('Mail: Email Queue Manager', 1, 'hours') RETURNING id
)
INSERT INTO ir_model_data (module, name, model, res_id, noupdate)
SELECT 'mail', 'ir_cron_mail_scheduler_action', 'ir.cron', id, true FROM c;
