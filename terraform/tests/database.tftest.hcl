# Unit tests of modules/database.

mock_provider "aws" {
  override_during = plan
  source          = "./mocks"
}

variables {
  name       = "genops-test"
  vpc_id     = "vpc-0123456789abcdef0"
  subnet_ids = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
}

run "database_defaults_are_protected" {
  command = plan

  module {
    source = "../modules/database"
  }

  assert {
    condition     = aws_db_instance.this.storage_encrypted && aws_db_instance.this.kms_key_id == aws_kms_key.db.arn && aws_kms_key.db.enable_key_rotation
    error_message = "storage must be encrypted with the module's rotating KMS key"
  }

  assert {
    condition     = aws_db_instance.this.publicly_accessible == false
    error_message = "the database must not be publicly accessible"
  }

  assert {
    condition     = aws_db_subnet_group.this.subnet_ids == toset(var.subnet_ids)
    error_message = "the database must live in the given (private) subnets only"
  }

  assert {
    condition     = aws_db_instance.this.manage_master_user_password && aws_db_instance.this.master_user_secret_kms_key_id == aws_kms_key.db.arn && aws_db_instance.this.password == null
    error_message = "the master password must be managed by RDS in Secrets Manager, encrypted with the module's key"
  }

  assert {
    condition     = output.master_user_secret_arn == "arn:aws:secretsmanager:us-west-2:123456789012:secret:rds!db-mock-AbCdEf"
    error_message = "the secret ARN output must come from the instance's managed secret"
  }

  assert {
    condition     = aws_db_instance.this.iam_database_authentication_enabled
    error_message = "IAM database authentication must be on"
  }

  assert {
    condition     = aws_db_instance.this.multi_az && aws_db_instance.this.deletion_protection && aws_db_instance.this.backup_retention_period >= 7 && aws_db_instance.this.copy_tags_to_snapshot
    error_message = "module defaults must be Multi-AZ, deletion-protected and backed up"
  }

  assert {
    condition     = aws_db_instance.this.performance_insights_kms_key_id == aws_kms_key.db.arn && toset(aws_db_instance.this.enabled_cloudwatch_logs_exports) == toset(["postgresql", "upgrade"])
    error_message = "Performance Insights must be encrypted and logs exported"
  }

  assert {
    condition     = anytrue([for p in aws_db_parameter_group.this.parameter : p.name == "rds.force_ssl" && p.value == "1"])
    error_message = "the parameter group must force TLS"
  }

  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.db) == 0 && aws_vpc_security_group_ingress_rule.db_from_clients.referenced_security_group_id == aws_security_group.client.id && aws_vpc_security_group_ingress_rule.db_from_clients.from_port == 5432 && aws_vpc_security_group_ingress_rule.db_from_clients.to_port == 5432 && aws_vpc_security_group_ingress_rule.db_from_clients.cidr_ipv4 == null
    error_message = "PostgreSQL must admit only the database client security group (not the cluster security group, never a CIDR)"
  }

  assert {
    condition     = aws_vpc_security_group_egress_rule.client_to_db.referenced_security_group_id == aws_security_group.db.id && aws_vpc_security_group_egress_rule.client_to_db.from_port == 5432 && output.client_security_group_id == aws_security_group.client.id
    error_message = "the client security group reaches only the database port"
  }

  assert {
    condition     = alltrue([for lg in aws_cloudwatch_log_group.db : lg.kms_key_id == aws_kms_key.db.arn])
    error_message = "exported database logs must be encrypted"
  }
}

run "database_dev_settings" {
  command = plan

  module {
    source = "../modules/database"
  }

  variables {
    multi_az              = false
    deletion_protection   = false
    skip_final_snapshot   = true
    backup_retention_days = 7
  }

  assert {
    condition     = aws_db_instance.this.multi_az == false && aws_db_instance.this.deletion_protection == false && aws_db_instance.this.storage_encrypted && aws_db_instance.this.publicly_accessible == false
    error_message = "dev may drop Multi-AZ and deletion protection but never encryption or privacy"
  }
}
