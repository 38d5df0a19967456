# Unit tests of modules/registry.

mock_provider "aws" {
  override_during = plan
  source          = "./mocks"
}

run "repositories" {
  command = plan

  module {
    source = "../modules/registry"
  }

  variables {
    name = "genops-test"
  }

  assert {
    condition     = toset(keys(aws_ecr_repository.this)) == toset(["genops/component", "genops/train-cuda", "genops/serving", "genops/mlflow"])
    error_message = "the four genops repositories must exist"
  }

  assert {
    condition     = alltrue([for r in aws_ecr_repository.this : r.image_tag_mutability == "IMMUTABLE" && r.image_scanning_configuration[0].scan_on_push])
    error_message = "tags must be immutable and images scanned on push"
  }

  assert {
    condition     = alltrue([for r in aws_ecr_repository.this : r.encryption_configuration[0].encryption_type == "KMS" && r.encryption_configuration[0].kms_key == aws_kms_key.ecr.arn])
    error_message = "repositories must be encrypted with the module's KMS key"
  }

  assert {
    condition = alltrue([
      for p in aws_ecr_lifecycle_policy.this :
      length(jsondecode(p.policy).rules) == 2 && jsondecode(p.policy).rules[0].selection.tagStatus == "untagged" && jsondecode(p.policy).rules[1].selection.countType == "imageCountMoreThan"
    ])
    error_message = "every repository needs the lifecycle policy (expire untagged, cap image count)"
  }
}
