output "endpoint" {
  description = "Connection endpoint (host:port)."
  value       = aws_db_instance.this.endpoint
}

output "address" {
  description = "Host name of the instance."
  value       = aws_db_instance.this.address
}

output "port" {
  description = "PostgreSQL port."
  value       = aws_db_instance.this.port
}

output "db_name" {
  description = "Initial database (MLflow backend store)."
  value       = aws_db_instance.this.db_name
}

output "master_username" {
  description = "Master user name."
  value       = aws_db_instance.this.username
}

output "master_user_secret_arn" {
  description = "Secrets Manager secret holding the master credentials (JSON with username and password), rotated by RDS."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "kms_key_arn" {
  description = "KMS key encrypting storage, Performance Insights, the master secret and logs."
  value       = aws_kms_key.db.arn
}

output "resource_id" {
  description = "DbiResourceId, needed in rds-db:connect IAM policies for IAM authentication."
  value       = aws_db_instance.this.resource_id
}

output "security_group_id" {
  description = "Security group of the database."
  value       = aws_security_group.db.id
}

output "settings" {
  description = "Protection settings of the instance as planned: multi_az, deletion_protection, backup_retention_days, storage_encrypted, publicly_accessible, iam_authentication."
  value = {
    multi_az              = aws_db_instance.this.multi_az
    deletion_protection   = aws_db_instance.this.deletion_protection
    backup_retention_days = aws_db_instance.this.backup_retention_period
    storage_encrypted     = aws_db_instance.this.storage_encrypted
    publicly_accessible   = aws_db_instance.this.publicly_accessible
    iam_authentication    = aws_db_instance.this.iam_database_authentication_enabled
  }
}

output "client_security_group_id" {
  description = "Security group the database admits: give it to the pods that hold database credentials (SecurityGroupPolicy), not to whole nodes."
  value       = aws_security_group.client.id
}
