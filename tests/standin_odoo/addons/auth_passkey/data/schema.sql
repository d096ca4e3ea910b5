CREATE TABLE auth_passkey_key (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    credential_identifier varchar NOT NULL,
    public_key varchar NOT NULL,
    sign_count integer DEFAULT 0,
    create_uid integer REFERENCES res_users(id) ON DELETE CASCADE
);
