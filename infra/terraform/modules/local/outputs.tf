# Values come from the variables (known at plan time, so a changed `input` elsewhere never makes
# them unknown and never trips the root's production guard); depends_on ties each to its object.

output "database" {
  description = "Database name."
  value       = var.database
  depends_on  = [terraform_data.database]
}

output "role" {
  description = "Login role name."
  value       = var.role
  depends_on  = [terraform_data.role_config, terraform_data.login_config]
}

output "filestore" {
  description = "Filestore directory."
  value       = var.filestore
  depends_on  = [terraform_data.filestore]
}
