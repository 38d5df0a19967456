terraform {
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Partial configuration: bucket, key and region come from backend.hcl
  # (copy backend.hcl.example). State is encrypted at rest and locked with an
  # S3 lock file (no DynamoDB table needed, Terraform >= 1.10).
  backend "s3" {
    encrypt      = true
    use_lockfile = true
  }
}
