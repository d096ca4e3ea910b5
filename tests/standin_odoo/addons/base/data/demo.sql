-- Demo partners and the demo user (Odoo's base demo data has the same kind of records).
INSERT INTO res_partner (name, display_name, email, phone, street, zip, city, vat, is_company)
VALUES ('Azure Interior', 'Azure Interior', 'azure.Interior24@example.com', '(870)-931-0505',
        '4557 De Silva St', '94538', 'Fremont', 'US12345671', true),
       ('Deco Addict', 'Deco Addict', 'deco_addict@example.com', '(603)-996-3829',
        '77 Santa Barbara Rd', '94523', 'Pleasant Hill', 'US12345672', true),
       ('Gemini Furniture', 'Gemini Furniture', 'gemini_furniture@example.com', '(941)-284-4875',
        '317 Fairchild Dr', '93105', 'Fairfield', 'US12345674', true),
       ('Marc Demo', 'Marc Demo', 'mark.brown23@example.com', '(441)-695-2334',
        '3575 Buena Vista Avenue', '97401', 'Eugene', NULL, false);
INSERT INTO res_partner_bank (acc_number, sanitized_acc_number, acc_holder_name, partner_id)
SELECT 'BE71096123456769', 'BE71096123456769', name, id FROM res_partner WHERE name = 'Deco Addict';
INSERT INTO res_users (login, password, partner_id, company_id, signature)
SELECT 'demo', NULL, id, 1, '<p>Mr Demo</p>' FROM res_partner WHERE name = 'Marc Demo';
