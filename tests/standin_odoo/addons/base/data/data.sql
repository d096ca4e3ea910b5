-- Records `base` creates at install: company, its partner, OdooBot, admin, public user, crons.
INSERT INTO res_partner (id, name, display_name, email, is_company)
VALUES (1, 'My Company', 'My Company', 'info@yourcompany.com', true),
       (2, 'OdooBot', 'OdooBot', 'odoobot@example.com', false),
       (3, 'Administrator', 'Administrator', 'admin@yourcompany.example.com', false),
       (4, 'Public user', 'Public user', NULL, false);
SELECT setval('res_partner_id_seq', 4);
INSERT INTO res_company (id, name, partner_id, email) VALUES (1, 'My Company', 1, 'info@yourcompany.com');
SELECT setval('res_company_id_seq', 1);
UPDATE res_partner SET company_id = 1 WHERE id = 1;
INSERT INTO res_users (id, login, password, partner_id, company_id, active, share)
VALUES (1, '__system__', NULL, 2, 1, false, false),
       (2, 'admin', NULL, 3, 1, true, false),
       (3, 'public', NULL, 4, 1, false, true);
SELECT setval('res_users_id_seq', 3);
INSERT INTO ir_model_data (module, name, model, res_id, noupdate)
VALUES ('base', 'main_company', 'res.company', 1, true),
       ('base', 'main_partner', 'res.partner', 1, true),
       ('base', 'partner_root', 'res.partner', 2, true),
       ('base', 'partner_admin', 'res.partner', 3, true),
       ('base', 'user_root', 'res.users', 1, true),
       ('base', 'user_admin', 'res.users', 2, true),
       ('base', 'public_user', 'res.users', 3, true);
WITH c AS (
    INSERT INTO ir_cron (cron_name, interval_number, interval_type)
    VALUES ('Base: Auto-vacuum internal data', 1, 'days') RETURNING id
)
INSERT INTO ir_model_data (module, name, model, res_id, noupdate)
SELECT 'base', 'autovacuum_job', 'ir.cron', id, true FROM c;
WITH c AS (
    INSERT INTO ir_cron (cron_name, interval_number, interval_type)
    VALUES ('Base: Portal Users Deletion', 1, 'days') RETURNING id
)
INSERT INTO ir_model_data (module, name, model, res_id, noupdate)
SELECT 'base', 'ir_cron_res_users_deletion', 'ir.cron', id, true FROM c;
