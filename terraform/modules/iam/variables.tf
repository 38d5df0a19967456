variable "cluster_name" {
  description = "EKS cluster whose service accounts get the roles (EKS Pod Identity)."
  type        = string
}

variable "bucket_arn" {
  description = "ARN of the artifacts bucket."
  type        = string
}

variable "bucket_kms_key_arn" {
  description = "KMS key of the artifacts bucket."
  type        = string
}

variable "bucket_prefixes" {
  description = "Key prefixes in the artifacts bucket (from the storage module): pipeline_root, mlflow, datasets, tmp."
  type = object({
    pipeline_root = string
    mlflow        = string
    datasets      = string
    tmp           = string
  })
}

variable "ecr_repository_arns" {
  description = "ECR repositories the pipeline runner may pull from."
  type        = list(string)
}

variable "db_secret_arn" {
  description = "Secrets Manager secret with the RDS master credentials (read only by external_secrets, for the database bootstrap Job)."
  type        = string
}

variable "app_secret_arns" {
  description = "Secrets Manager secrets of the application users (database and MLflow) that External Secrets syncs into the cluster."
  type        = list(string)
  default     = []
}

variable "db_kms_key_arn" {
  description = "KMS key encrypting the database secret."
  type        = string
}

variable "service_accounts" {
  description = "Kubernetes namespace and service account bound to each role. Keys among pipeline_runner, mlflow, model_server, cluster_autoscaler, external_secrets, kfp_api, kfp_ui."
  type = map(object({
    namespace       = string
    service_account = string
  }))
  default = {
    pipeline_runner    = { namespace = "kubeflow", service_account = "genops-pipeline-runner" }
    mlflow             = { namespace = "mlflow", service_account = "mlflow" }
    model_server       = { namespace = "genops-serving", service_account = "genops-model-server" }
    cluster_autoscaler = { namespace = "kube-system", service_account = "cluster-autoscaler" }
  }

  validation {
    condition     = length(setsubtract(["pipeline_runner", "mlflow", "model_server", "cluster_autoscaler"], keys(var.service_accounts))) == 0
    error_message = "service_accounts must define pipeline_runner, mlflow, model_server and cluster_autoscaler."
  }

  validation {
    condition     = length(setsubtract(keys(var.service_accounts), ["pipeline_runner", "mlflow", "model_server", "cluster_autoscaler", "external_secrets", "kfp_api", "kfp_ui"])) == 0
    error_message = "service_accounts may only name known workloads (pipeline_runner, mlflow, model_server, cluster_autoscaler, external_secrets, kfp_api, kfp_ui)."
  }
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
