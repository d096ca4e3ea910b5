CREATE TABLE base_automation (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    model_name varchar,
    trigger varchar NOT NULL DEFAULT 'on_create_or_write',
    active boolean DEFAULT true
);
