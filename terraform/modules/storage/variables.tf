variable "name" {
  description = "Name prefix (e.g. genops-dev). The bucket is named <name>-artifacts-<account>-<region> unless bucket_name is set."
  type        = string
}

variable "bucket_name" {
  description = "Explicit name of the artifacts bucket. null = derived from name, account and region (globally unique)."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)."
  }
}

variable "force_destroy" {
  description = "Allow terraform destroy to delete non-empty buckets. Keep false outside throw-away environments."
  type        = bool
  default     = false
}

variable "pipeline_root_expiration_days" {
  description = "Days after which KFP intermediate artifacts under pipeline-root/ expire. MLflow artifacts (models) never expire."
  type        = number
  default     = 180

  validation {
    condition     = var.pipeline_root_expiration_days >= 30
    error_message = "pipeline_root_expiration_days must be at least 30."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days to keep overwritten or deleted object versions."
  type        = number
  default     = 90

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1
    error_message = "noncurrent_version_expiration_days must be at least 1."
  }
}

variable "access_log_expiration_days" {
  description = "Days to keep S3 server access logs."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
