# Unit tests of modules/app-secrets (per-application users instead of the RDS master).

mock_provider "aws" {
  override_during = plan
  source          = "./mocks"
}

variables {
  name          = "genops-test"
  database_host = "genops-test.abcdefghijkl.us-west-2.rds.amazonaws.com"
  kms_key_arn   = "arn:aws:kms:us-west-2:123456789012:key/aaaaaaaa-0000-0000-0000-000000000002"
}

run "one_secret_per_application_user" {
  command = plan

  module {
    source = "../modules/app-secrets"
  }

  assert {
    condition     = toset(keys(aws_secretsmanager_secret.database)) == toset(["mlflow", "optuna", "kfp"]) && aws_secretsmanager_secret.database["kfp"].name == "genops-test/db/kfp"
    error_message = "MLflow, Optuna and KFP each get their own database user secret"
  }

  assert {
    condition     = toset(keys(aws_secretsmanager_secret.mlflow)) == toset(["admin", "pipelines"]) && aws_secretsmanager_secret.mlflow["pipelines"].name == "genops-test/mlflow/pipelines"
    error_message = "the pipelines get an MLflow user of their own, not the admin"
  }

  assert {
    condition     = alltrue([for s in concat(values(aws_secretsmanager_secret.database), values(aws_secretsmanager_secret.mlflow)) : s.kms_key_id == var.kms_key_arn])
    error_message = "every secret is encrypted with the database's customer managed key"
  }

  assert {
    condition     = alltrue([for v in concat(values(aws_secretsmanager_secret_version.database), values(aws_secretsmanager_secret_version.mlflow)) : v.secret_string == null && v.secret_string_wo_version == 1])
    error_message = "passwords are written write-only (never in plan or state)"
  }

  assert {
    condition     = output.database_usernames == { mlflow = "genops_mlflow", optuna = "genops_optuna", kfp = "genops_kfp" }
    error_message = "application roles are named <prefix>_<application>"
  }
}
