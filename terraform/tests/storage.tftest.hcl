# Unit tests of modules/storage.

mock_provider "aws" {
  override_during = plan
  source          = "./mocks"
}

run "artifacts_bucket_is_locked_down" {
  command = plan

  module {
    source = "../modules/storage"
  }

  variables {
    name = "genops-test"
  }

  assert {
    condition     = aws_s3_bucket.artifacts.bucket == "genops-test-artifacts-123456789012-us-west-2"
    error_message = "the bucket name must be derived from name, account and region"
  }

  assert {
    condition = alltrue([
      for r in aws_s3_bucket_server_side_encryption_configuration.artifacts.rule :
      one(r.apply_server_side_encryption_by_default).sse_algorithm == "aws:kms" && one(r.apply_server_side_encryption_by_default).kms_master_key_id == aws_kms_key.s3.arn && r.bucket_key_enabled
    ])
    error_message = "the artifacts bucket must use SSE-KMS with the module's key and a bucket key"
  }

  assert {
    condition     = aws_kms_key.s3.enable_key_rotation
    error_message = "the bucket KMS key must rotate"
  }

  assert {
    condition     = aws_s3_bucket_versioning.artifacts.versioning_configuration[0].status == "Enabled"
    error_message = "versioning must be enabled"
  }

  assert {
    condition = alltrue([
      aws_s3_bucket_public_access_block.artifacts.block_public_acls,
      aws_s3_bucket_public_access_block.artifacts.block_public_policy,
      aws_s3_bucket_public_access_block.artifacts.ignore_public_acls,
      aws_s3_bucket_public_access_block.artifacts.restrict_public_buckets,
    ])
    error_message = "all four public access blocks must be on"
  }

  assert {
    condition = anytrue([
      for s in jsondecode(aws_s3_bucket_policy.artifacts.policy).Statement :
      s.Effect == "Deny" && s.Principal == "*" && s.Action == "s3:*" && try(s.Condition.Bool["aws:SecureTransport"], null) == "false"
    ])
    error_message = "the bucket policy must deny every request that is not TLS"
  }

  assert {
    condition     = aws_s3_bucket_logging.artifacts.target_bucket == aws_s3_bucket.logs.id
    error_message = "access logging must go to the log bucket"
  }

  assert {
    condition     = toset([for r in aws_s3_bucket_lifecycle_configuration.artifacts.rule : r.id]) == toset(["all-objects-housekeeping", "pipeline-root-expiry", "mlflow-artifacts-tiering", "tmp-expiry"])
    error_message = "lifecycle rules for housekeeping, pipeline-root expiry, MLflow tiering and tmp expiry are expected"
  }

  assert {
    condition     = alltrue([for r in aws_s3_bucket_lifecycle_configuration.artifacts.rule : r.id != "mlflow-artifacts-tiering" || length(r.expiration) == 0])
    error_message = "MLflow artifacts (registered models) must never expire"
  }

  assert {
    condition     = aws_s3_bucket_ownership_controls.artifacts.rule[0].object_ownership == "BucketOwnerEnforced"
    error_message = "ACLs must be disabled"
  }

  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.logs.rule).apply_server_side_encryption_by_default[0].sse_algorithm == "AES256"
    error_message = "the access-log bucket is encrypted with SSE-S3 (the only option S3 log delivery supports)"
  }

  assert {
    condition     = length(aws_s3_bucket.logs.bucket) <= 63
    error_message = "the log bucket name must fit S3's 63-character limit"
  }
}
