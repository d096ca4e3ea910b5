# Only Terraform core and its built-in `terraform_data` resource: the module works offline.
terraform {
  required_version = ">= 1.4.0"
}
