output "database_secret_arns" {
  description = "Secret ARN of each application's database user (mlflow, optuna, kfp)."
  value       = { for k, s in aws_secretsmanager_secret.database : k => s.arn }
}

output "mlflow_secret_arns" {
  description = "Secret ARN of each MLflow basic-auth user (admin, pipelines)."
  value       = { for k, s in aws_secretsmanager_secret.mlflow : k => s.arn }
}

output "database_usernames" {
  description = "PostgreSQL role of each application."
  value       = local.database_users
}
