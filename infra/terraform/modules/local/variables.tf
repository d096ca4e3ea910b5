# Inputs of one environment. The renderer validates them too; these checks are the second line.

variable "env_name" {
  description = "Environment name (a DNS label, as reconciler.core.naming produces)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.env_name))
    error_message = "env_name must be a DNS label: lowercase letters, digits and hyphens, at most 63 characters."
  }
}

variable "database" {
  description = "PostgreSQL database name."
  type        = string
  validation {
    condition = (
      can(regex("^[a-z0-9_][a-z0-9_-]{0,62}$", var.database))
      && !contains(["postgres", "template0", "template1"], var.database)
    )
    error_message = "database must match ^[a-z0-9_][a-z0-9_-]{0,62}$ and not be postgres, template0 or template1."
  }
}

variable "role" {
  description = "Login role that owns the database."
  type        = string
  validation {
    condition = (
      can(regex("^[a-z0-9_][a-z0-9_-]{0,62}$", var.role))
      && !startswith(var.role, "pg_")
      && !contains(["postgres", "public"], var.role)
    )
    error_message = "role must match ^[a-z0-9_][a-z0-9_-]{0,62}$, not start with pg_ and not be postgres or public."
  }
}

variable "role_password" {
  description = "Password of the role. Null: the role cannot log in (the rotation login is in use) or destroy."
  type        = string
  sensitive   = true
  default     = null
  validation {
    condition     = var.role_password == null || length(coalesce(var.role_password, "x")) >= 16
    error_message = "role_password must be at least 16 characters."
  }
}

variable "login_role" {
  description = "Second login of the environment, a member of the role whose sessions act as it (SET role): credential rotation alternates between the two, so the running version keeps its login while the next one starts with the other. Null: none."
  type        = string
  default     = null
  validation {
    condition = var.login_role == null || (
      can(regex("^[a-z0-9_][a-z0-9_-]{0,62}$", coalesce(var.login_role, "x")))
      && !startswith(coalesce(var.login_role, "x"), "pg_")
      && !contains(["postgres", "public"], coalesce(var.login_role, "x"))
    )
    error_message = "login_role must match ^[a-z0-9_][a-z0-9_-]{0,62}$, not start with pg_ and not be postgres or public."
  }
}

variable "login_password" {
  description = "Password of login_role; null leaves it unable to log in. Only a salted hash is kept in the state."
  type        = string
  sensitive   = true
  default     = null
  validation {
    condition     = var.login_password == null || length(coalesce(var.login_password, "x")) >= 16
    error_message = "login_password must be at least 16 characters."
  }
}

variable "connection_limit" {
  description = "Connection limit of the login role."
  type        = number
  default     = 32
  validation {
    condition     = var.connection_limit >= 1 && var.connection_limit <= 10000 && floor(var.connection_limit) == var.connection_limit
    error_message = "connection_limit must be an integer between 1 and 10000."
  }
}

variable "group_role" {
  description = "Existing NOLOGIN group role the login role joins (for example odooops_envs), or null."
  type        = string
  default     = null
  validation {
    condition     = var.group_role == null || can(regex("^[a-z_][a-z0-9_]{0,62}$", coalesce(var.group_role, "x")))
    error_message = "group_role must match ^[a-z_][a-z0-9_]{0,62}$."
  }
}

variable "filestore" {
  description = "Absolute path of the environment's filestore directory (created with mode 0700)."
  type        = string
  validation {
    condition = (
      can(regex("^(/[A-Za-z0-9._-]+){2,}$", var.filestore))
      && !can(regex("/\\.\\.?(/|$)", var.filestore))
    )
    error_message = "filestore must be a normalised absolute path at least two levels deep (characters A-Za-z0-9._-)."
  }
}

variable "filestore_owner" {
  description = "UID:GID that owns the filestore directory (the Odoo container user), or null to leave it."
  type        = string
  default     = null
  validation {
    condition     = var.filestore_owner == null || can(regex("^[0-9]+:[0-9]+$", coalesce(var.filestore_owner, "x")))
    error_message = "filestore_owner must be UID:GID."
  }
}

variable "pg" {
  description = "Admin connection. The password is not an input: Terraform's environment carries it (ODOOOPS_PG_ADMIN_PASSWORD)."
  type = object({
    host           = string
    port           = number
    admin_user     = string
    admin_database = optional(string, "postgres")
  })
  validation {
    condition = (
      can(regex("^[A-Za-z0-9._:/-]+$", var.pg.host))
      && var.pg.port >= 1 && var.pg.port <= 65535
      && can(regex("^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$", var.pg.admin_user))
      && can(regex("^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$", var.pg.admin_database))
    )
    error_message = "pg needs a host name/address (or socket directory), a port 1-65535 and plain admin user/database names."
  }
}

variable "production" {
  description = "A production environment: its destroy provisioners refuse to drop anything."
  type        = bool
  default     = false
}

variable "psql" {
  description = "psql (>= 15, for \\getenv) to run the provisioner SQL with."
  type        = string
  default     = "psql"
}
