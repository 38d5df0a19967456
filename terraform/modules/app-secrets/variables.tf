variable "name" {
  description = "Prefix of the secret names (<name>/db/<user>, <name>/mlflow/<user>), e.g. genops-dev."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the PostgreSQL role names (<prefix>_<user>)."
  type        = string
  default     = "genops"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,30}$", var.name_prefix))
    error_message = "name_prefix must be a lower-case PostgreSQL identifier."
  }
}

variable "database_users" {
  description = "Applications that get their own database user."
  type        = list(string)
  default     = ["mlflow", "optuna", "kfp"]
}

variable "database_host" {
  description = "PostgreSQL host name (written into the database secrets for clients)."
  type        = string
}

variable "database_port" {
  description = "PostgreSQL port."
  type        = number
  default     = 5432
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the secrets (the database module's key)."
  type        = string
}

variable "password_version" {
  description = "Bump to generate and write new passwords (write-only secret versions)."
  type        = number
  default     = 1
}

variable "recovery_window_in_days" {
  description = "Days a deleted secret can be restored."
  type        = number
  default     = 7
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
