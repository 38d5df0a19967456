variable "name" {
  description = "Name prefix for the KMS key alias (e.g. genops-dev)."
  type        = string
}

variable "repository_names" {
  description = "ECR repositories to create: component (KFP steps), train-cuda (GPU training), serving (model server), mlflow (tracking server)."
  type        = list(string)
  default     = ["genops/component", "genops/train-cuda", "genops/serving", "genops/mlflow"]

  validation {
    condition     = length(var.repository_names) > 0 && alltrue([for n in var.repository_names : can(regex("^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$", n))])
    error_message = "repository_names must be valid ECR repository names (lowercase, / separated)."
  }
}

variable "max_image_count" {
  description = "Images kept per repository; older ones are expired by the lifecycle policy."
  type        = number
  default     = 50

  validation {
    condition     = var.max_image_count >= 5
    error_message = "max_image_count must be at least 5."
  }
}

variable "untagged_expiration_days" {
  description = "Days after which untagged images (failed or superseded pushes) expire."
  type        = number
  default     = 7
}

variable "force_delete" {
  description = "Allow terraform destroy to delete repositories that still hold images."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
