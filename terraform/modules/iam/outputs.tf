output "role_arns" {
  description = "Map of workload => IAM role ARN (pipeline_runner, mlflow, model_server, cluster_autoscaler, external_secrets, kfp_api, kfp_ui)."
  value       = { for k, r in aws_iam_role.workload : k => r.arn }
}

output "service_accounts" {
  description = "Map of workload => namespace/service account bound to its role via EKS Pod Identity."
  value       = { for k, sa in var.service_accounts : k => "${sa.namespace}/${sa.service_account}" }
}
