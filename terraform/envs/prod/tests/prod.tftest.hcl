# Tests of the prod root: its stricter defaults, and validations that keep a
# tfvars file from weakening them.

mock_provider "aws" {
  override_during = plan
  source          = "../../tests/mocks"
}

run "prod_defaults" {
  command = plan

  assert {
    condition     = output.cluster_name == "genops-prod" && output.environment_summary.environment == "prod"
    error_message = "prod must be named genops-prod"
  }

  assert {
    condition     = output.environment_summary.nat_gateways == 3
    error_message = "prod needs one NAT gateway per availability zone"
  }

  assert {
    condition = (
      output.environment_summary.database.multi_az &&
      output.environment_summary.database.deletion_protection &&
      output.environment_summary.database.backup_retention_days >= 14 &&
      output.environment_summary.database.storage_encrypted &&
      !output.environment_summary.database.publicly_accessible
    )
    error_message = "prod database must be Multi-AZ, deletion-protected, backed up 14+ days, encrypted and private: ${jsonencode(output.environment_summary.database)}"
  }

  assert {
    condition     = output.environment_summary.cluster_endpoint_public_access == false
    error_message = "the prod API endpoint must be private by default"
  }

  assert {
    condition     = output.environment_summary.gpu_min_size == 0 && output.gpu_node_selector == { "genops.io/node-pool" = "gpu" }
    error_message = "prod GPU nodes also scale from zero and keep the pipeline contract"
  }

  assert {
    condition     = output.environment_summary.cluster_support_type == "EXTENDED"
    error_message = "the cluster keeps its version until upgraded deliberately (EXTENDED support)"
  }

  assert {
    condition     = output.service_accounts.pipeline_runner == "kubeflow/genops-pipeline-runner" && output.service_accounts.external_secrets == "external-secrets/external-secrets" && output.service_accounts.kfp_api == "kubeflow/ml-pipeline"
    error_message = "Pod Identity must bind the service accounts k8s/platform runs workloads as"
  }

  assert {
    condition     = length(setsubtract([for s in ["s3", "ecr.api", "ecr.dkr", "sts", "logs"] : "com.amazonaws.us-west-2.${s}"], output.vpc_endpoint_services)) == 0
    error_message = "S3, ECR, STS and CloudWatch Logs must have VPC endpoints"
  }

  assert {
    condition     = toset(keys(output.database_app_secret_arns)) == toset(["mlflow", "optuna", "kfp"]) && toset(keys(output.mlflow_user_secret_arns)) == toset(["admin", "pipelines"])
    error_message = "per-application database and MLflow users"
  }
}

run "prod_rejects_deletable_database" {
  command = plan

  variables {
    db_deletion_protection = false
  }

  expect_failures = [var.db_deletion_protection]
}

run "prod_rejects_single_az_database" {
  command = plan

  variables {
    db_multi_az = false
  }

  expect_failures = [var.db_multi_az]
}

run "prod_rejects_short_backups" {
  command = plan

  variables {
    db_backup_retention_days = 7
  }

  expect_failures = [var.db_backup_retention_days]
}
