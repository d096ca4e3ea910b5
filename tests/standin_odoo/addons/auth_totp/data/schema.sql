ALTER TABLE res_users ADD COLUMN totp_secret varchar;
