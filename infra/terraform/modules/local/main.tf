# One environment on the local host: a least-privilege login role, a database it owns that
# PUBLIC cannot connect to, and a 0700 filestore directory.
#
# Only `terraform_data` and local-exec provisioners (works offline). Rules that shape this file:
# - Values reach the script through `environment`, never through the command string.
# - `triggers_replace` holds what must re-run a create provisioner when it changes (a changed
#   `input` is only an in-place update). Identity (names) and settings live in separate
#   resources so that a new password or connection limit re-runs ALTER ROLE instead of
#   replacing (dropping) the role or database.
# - `triggers_replace` uses variables, never another resource's `output`: that output turns
#   unknown whenever the other resource's `input` changes (say, the production flag), which
#   would force a replacement - a DROP DATABASE - for a harmless edit. `depends_on` orders them.
# - Destroy provisioners can read only `self`, so `input` carries everything they need except
#   the admin password, which the Terraform process environment provides (never the state).

locals {
  script = "${path.module}/scripts/odooops-local.sh"
  # Connection settings for create-time provisioners (destroy-time ones read self.output).
  pg_env = {
    PGHOST            = var.pg.host
    PGPORT            = tostring(var.pg.port)
    PGUSER            = var.pg.admin_user
    OO_ADMIN_DATABASE = var.pg.admin_database
    OO_PSQL           = var.psql
  }
  conn = {
    host           = var.pg.host
    port           = tostring(var.pg.port)
    admin_user     = var.pg.admin_user
    admin_database = var.pg.admin_database
    psql           = var.psql
    production     = var.production
  }
  # Salted so equal passwords of two roles give different hashes; the password itself is
  # never stored. Null (destroy without a password) hashes to a placeholder.
  password_hash = var.role_password == null ? "unset" : sha256("odooops:${var.role}:${var.role_password}")
  login_hash    = var.login_password == null ? "unset" : sha256("odooops:${coalesce(var.login_role, "-")}:${var.login_password}")
}

resource "terraform_data" "role" {
  triggers_replace = { role = var.role }
  input            = merge(local.conn, { role = var.role })

  provisioner "local-exec" {
    interpreter = ["/bin/sh", local.script]
    command     = "role-create"
    environment = merge(local.pg_env, { OO_ROLE = var.role })
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh", "${path.module}/scripts/odooops-local.sh"]
    command     = "role-destroy"
    environment = {
      PGHOST            = self.output.host
      PGPORT            = self.output.port
      PGUSER            = self.output.admin_user
      OO_ADMIN_DATABASE = self.output.admin_database
      OO_PSQL           = self.output.psql
      OO_ROLE           = self.output.role
      OO_PRODUCTION     = tostring(self.output.production)
    }
  }
}

# Password, connection limit and group membership: re-applied (ALTER ROLE) whenever one changes.
resource "terraform_data" "role_config" {
  depends_on = [terraform_data.role]
  triggers_replace = {
    role             = var.role
    password_hash    = local.password_hash
    connection_limit = tostring(var.connection_limit)
    group_role       = coalesce(var.group_role, "-")
  }

  lifecycle {
    precondition {
      condition     = var.role_password != null || var.login_password != null
      error_message = "role_password or login_password is required: without either nothing can log in (pass TF_VAR_role_password)."
    }
  }

  provisioner "local-exec" {
    interpreter = ["/bin/sh", local.script]
    command     = "role-config"
    environment = merge(local.pg_env, {
      OO_ROLE             = var.role
      OO_ROLE_PASSWORD    = var.role_password == null ? "" : var.role_password
      OO_CONNECTION_LIMIT = tostring(var.connection_limit)
      OO_GROUP_ROLE       = var.group_role == null ? "" : var.group_role
    })
  }
}

# The rotation login: identity (create/drop) and settings (password, limit) apart, as for the role.
resource "terraform_data" "login" {
  count            = var.login_role == null ? 0 : 1
  depends_on       = [terraform_data.role]
  triggers_replace = { login = var.login_role, role = var.role }
  input            = merge(local.conn, { login = var.login_role, role = var.role })

  provisioner "local-exec" {
    interpreter = ["/bin/sh", local.script]
    command     = "login-create"
    environment = merge(local.pg_env, { OO_LOGIN = var.login_role, OO_ROLE = var.role })
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh", "${path.module}/scripts/odooops-local.sh"]
    command     = "login-destroy"
    environment = {
      PGHOST            = self.output.host
      PGPORT            = self.output.port
      PGUSER            = self.output.admin_user
      OO_ADMIN_DATABASE = self.output.admin_database
      OO_PSQL           = self.output.psql
      OO_LOGIN          = self.output.login
      OO_PRODUCTION     = tostring(self.output.production)
    }
  }
}

resource "terraform_data" "login_config" {
  count      = var.login_role == null ? 0 : 1
  depends_on = [terraform_data.login]
  triggers_replace = {
    login            = var.login_role
    password_hash    = local.login_hash
    connection_limit = tostring(var.connection_limit)
    group_role       = coalesce(var.group_role, "-")
  }

  provisioner "local-exec" {
    interpreter = ["/bin/sh", local.script]
    command     = "login-config"
    environment = merge(local.pg_env, {
      OO_LOGIN            = var.login_role
      OO_ROLE_PASSWORD    = var.login_password == null ? "" : var.login_password
      OO_CONNECTION_LIMIT = tostring(var.connection_limit)
      OO_GROUP_ROLE       = var.group_role == null ? "" : var.group_role
    })
  }
}

resource "terraform_data" "database" {
  depends_on       = [terraform_data.role]
  triggers_replace = { database = var.database, role = var.role }
  input            = merge(local.conn, { database = var.database, role = var.role })

  provisioner "local-exec" {
    interpreter = ["/bin/sh", local.script]
    command     = "db-create"
    environment = merge(local.pg_env, { OO_DATABASE = var.database, OO_ROLE = var.role })
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh", "${path.module}/scripts/odooops-local.sh"]
    command     = "db-destroy"
    environment = {
      PGHOST            = self.output.host
      PGPORT            = self.output.port
      PGUSER            = self.output.admin_user
      OO_ADMIN_DATABASE = self.output.admin_database
      OO_PSQL           = self.output.psql
      OO_DATABASE       = self.output.database
      OO_ROLE           = self.output.role
      OO_PRODUCTION     = tostring(self.output.production)
    }
  }
}

resource "terraform_data" "filestore" {
  triggers_replace = { filestore = var.filestore }
  input            = { filestore = var.filestore, production = var.production }

  provisioner "local-exec" {
    interpreter = ["/bin/sh", local.script]
    command     = "fs-create"
    environment = { OO_FILESTORE = var.filestore }
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh", "${path.module}/scripts/odooops-local.sh"]
    command     = "fs-destroy"
    environment = {
      OO_FILESTORE  = self.output.filestore
      OO_PRODUCTION = tostring(self.output.production)
    }
  }
}

# Ownership is a setting of the directory, not its identity: changing it must not remove it.
resource "terraform_data" "filestore_owner" {
  count            = var.filestore_owner == null ? 0 : 1
  depends_on       = [terraform_data.filestore]
  triggers_replace = { filestore = var.filestore, owner = var.filestore_owner }

  provisioner "local-exec" {
    interpreter = ["/bin/sh", local.script]
    command     = "fs-create"
    environment = { OO_FILESTORE = var.filestore, OO_FILESTORE_OWNER = var.filestore_owner }
  }
}
