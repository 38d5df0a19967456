output "bucket_name" {
  description = "Name of the artifacts bucket."
  value       = aws_s3_bucket.artifacts.bucket
}

output "bucket_arn" {
  description = "ARN of the artifacts bucket."
  value       = aws_s3_bucket.artifacts.arn
}

output "kms_key_arn" {
  description = "KMS key encrypting the artifacts bucket."
  value       = aws_kms_key.s3.arn
}

output "log_bucket_name" {
  description = "Name of the access-log bucket."
  value       = aws_s3_bucket.logs.bucket
}

output "prefixes" {
  description = "Key prefixes inside the artifacts bucket: pipeline_root (KFP), mlflow (MLflow artifacts), datasets (inputs), tmp (expires after 7 days)."
  value       = local.prefixes
}
