-- deactivate fetchmail servers
UPDATE fetchmail_server
   SET active = false;
