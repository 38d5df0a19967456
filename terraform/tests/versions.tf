# Harness root for the module unit tests in this directory. It declares no
# resources; every run block in *.tftest.hcl points at one module under
# ../modules. Run with scripts/tf.sh offline-test (or pytest -m terraform).
terraform {
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}
