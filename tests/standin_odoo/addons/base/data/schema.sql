-- Core tables of Odoo 19 that OdooOps reads or writes (a subset of the real columns).
CREATE TABLE ir_module_module (
    id serial PRIMARY KEY,
    name varchar NOT NULL UNIQUE,
    state varchar(16) NOT NULL DEFAULT 'uninstalled',
    latest_version varchar,
    demo boolean DEFAULT false,
    shortdesc jsonb,
    summary jsonb,
    author varchar,
    license varchar(32),
    application boolean DEFAULT false,
    auto_install boolean DEFAULT false,
    category_id integer,
    create_date timestamp DEFAULT (now() at time zone 'UTC'),
    write_date timestamp DEFAULT (now() at time zone 'UTC')
);
CREATE TABLE ir_module_module_dependency (
    id serial PRIMARY KEY,
    module_id integer REFERENCES ir_module_module(id) ON DELETE CASCADE,
    name varchar
);
CREATE TABLE ir_model_data (
    id serial PRIMARY KEY,
    module varchar NOT NULL,
    name varchar NOT NULL,
    model varchar NOT NULL,
    res_id integer,
    noupdate boolean DEFAULT false,
    UNIQUE (module, name)
);
CREATE TABLE ir_config_parameter (
    id serial PRIMARY KEY,
    key varchar NOT NULL UNIQUE,
    value text NOT NULL,
    create_date timestamp DEFAULT (now() at time zone 'UTC'),
    write_date timestamp DEFAULT (now() at time zone 'UTC')
);
CREATE TABLE res_company (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    partner_id integer,
    email varchar,
    phone varchar
);
CREATE TABLE res_partner (
    id serial PRIMARY KEY,
    name varchar,
    display_name varchar,
    company_id integer,
    email varchar,
    phone varchar,
    street varchar,
    street2 varchar,
    zip varchar,
    city varchar,
    vat varchar,
    website varchar,
    comment text,
    is_company boolean DEFAULT false,
    active boolean DEFAULT true,
    create_date timestamp DEFAULT (now() at time zone 'UTC'),
    write_date timestamp DEFAULT (now() at time zone 'UTC')
);
ALTER TABLE res_company ADD FOREIGN KEY (partner_id) REFERENCES res_partner(id);
CREATE TABLE res_partner_bank (
    id serial PRIMARY KEY,
    acc_number varchar NOT NULL,
    sanitized_acc_number varchar,
    acc_holder_name varchar,
    partner_id integer NOT NULL REFERENCES res_partner(id) ON DELETE CASCADE,
    active boolean DEFAULT true
);
CREATE TABLE res_users (
    id serial PRIMARY KEY,
    login varchar NOT NULL UNIQUE,
    password varchar,
    partner_id integer NOT NULL REFERENCES res_partner(id),
    company_id integer REFERENCES res_company(id),
    active boolean DEFAULT true,
    share boolean DEFAULT false,
    signature text,
    create_date timestamp DEFAULT (now() at time zone 'UTC'),
    write_date timestamp DEFAULT (now() at time zone 'UTC')
);
CREATE TABLE res_users_apikeys (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    user_id integer NOT NULL REFERENCES res_users(id) ON DELETE CASCADE,
    scope varchar,
    index varchar(8) NOT NULL,
    key varchar NOT NULL,
    expiration_date timestamp,
    create_date timestamp DEFAULT (now() at time zone 'UTC')
);
CREATE TABLE ir_mail_server (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    from_filter varchar,
    smtp_host varchar,
    smtp_port integer DEFAULT 25,
    smtp_authentication varchar DEFAULT 'login',
    smtp_encryption varchar DEFAULT 'none',
    smtp_user varchar,
    smtp_pass varchar,
    sequence integer DEFAULT 10,
    active boolean DEFAULT true
);
-- Odoo's column is cron_name; `name` mirrors it for readers that use the model field name.
CREATE TABLE ir_cron (
    id serial PRIMARY KEY,
    cron_name varchar NOT NULL,
    name varchar GENERATED ALWAYS AS (cron_name) STORED,
    active boolean DEFAULT true,
    interval_number integer DEFAULT 1,
    interval_type varchar DEFAULT 'months',
    nextcall timestamp NOT NULL DEFAULT (now() at time zone 'UTC'),
    lastcall timestamp,
    priority integer DEFAULT 5
);
CREATE TABLE ir_attachment (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    res_model varchar,
    res_field varchar,
    res_id integer,
    type varchar NOT NULL DEFAULT 'binary',
    url varchar,
    public boolean DEFAULT false,
    store_fname varchar,
    db_datas bytea,
    file_size integer,
    checksum varchar(40),
    mimetype varchar,
    create_date timestamp DEFAULT (now() at time zone 'UTC')
);
CREATE INDEX ir_attachment_store_fname_idx ON ir_attachment (store_fname);
CREATE TABLE ir_act_server (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    state varchar NOT NULL DEFAULT 'code',
    webhook_url varchar
);
