output "repository_urls" {
  description = "Map of repository name to repository URL (<account>.dkr.ecr.<region>.amazonaws.com/<name>)."
  value       = { for name, repo in aws_ecr_repository.this : name => repo.repository_url }
}

output "repository_arns" {
  description = "Map of repository name to repository ARN."
  value       = { for name, repo in aws_ecr_repository.this : name => repo.arn }
}

output "kms_key_arn" {
  description = "KMS key encrypting the repositories."
  value       = aws_kms_key.ecr.arn
}

output "registry_url" {
  description = "Registry host of the repositories (<account>.dkr.ecr.<region>.amazonaws.com), for `docker login` and image names."
  value       = split("/", values(aws_ecr_repository.this)[0].repository_url)[0]
}
