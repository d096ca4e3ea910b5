CREATE TABLE iap_account (
    id serial PRIMARY KEY,
    service_name varchar,
    account_token varchar(43),
    company_ids varchar
);
