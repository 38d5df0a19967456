# Shared mock values for `terraform test` (mock_provider "aws" { source = ... }).
# The real provider schema still validates configuration under the mock, so
# the values look like real AWS identifiers. With `override_during = plan` in
# the test files these become known during plan, so assertions can use them.

mock_data "aws_caller_identity" {
  defaults = {
    account_id = "123456789012"
    arn        = "arn:aws:iam::123456789012:user/terraform-test"
    user_id    = "AIDAMOCKMOCKMOCKMOCK"
  }
}

mock_data "aws_region" {
  defaults = {
    name        = "us-west-2"
    description = "US West (Oregon)"
    endpoint    = "ec2.us-west-2.amazonaws.com"
  }
}

mock_data "aws_partition" {
  defaults = {
    partition          = "aws"
    dns_suffix         = "amazonaws.com"
    reverse_dns_prefix = "com.amazonaws"
  }
}

mock_resource "aws_kms_key" {
  defaults = {
    arn    = "arn:aws:kms:us-west-2:123456789012:key/11111111-2222-3333-4444-555555555555"
    key_id = "11111111-2222-3333-4444-555555555555"
  }
}

mock_resource "aws_iam_role" {
  defaults = {
    arn       = "arn:aws:iam::123456789012:role/mock-role"
    unique_id = "AROAMOCKMOCKMOCKMOCK"
  }
}

mock_resource "aws_cloudwatch_log_group" {
  defaults = {
    arn = "arn:aws:logs:us-west-2:123456789012:log-group:mock"
  }
}

mock_resource "aws_vpc" {
  defaults = {
    id  = "vpc-0123456789abcdef0"
    arn = "arn:aws:ec2:us-west-2:123456789012:vpc/vpc-0123456789abcdef0"
  }
}

mock_resource "aws_subnet" {
  defaults = {
    id = "subnet-0123456789abcdef0"
  }
}

mock_resource "aws_security_group" {
  defaults = {
    id = "sg-0123456789abcdef0"
  }
}

mock_resource "aws_eip" {
  defaults = {
    id            = "eipalloc-0123456789abcdef0"
    allocation_id = "eipalloc-0123456789abcdef0"
  }
}

mock_resource "aws_nat_gateway" {
  defaults = {
    id = "nat-0123456789abcdef0"
  }
}

mock_resource "aws_internet_gateway" {
  defaults = {
    id = "igw-0123456789abcdef0"
  }
}

mock_resource "aws_route_table" {
  defaults = {
    id = "rtb-0123456789abcdef0"
  }
}

mock_resource "aws_launch_template" {
  defaults = {
    id             = "lt-0123456789abcdef0"
    latest_version = 1
  }
}

mock_resource "aws_eks_cluster" {
  defaults = {
    arn      = "arn:aws:eks:us-west-2:123456789012:cluster/mock"
    endpoint = "https://0123456789ABCDEF0123456789ABCDEF.gr7.us-west-2.eks.amazonaws.com"
    certificate_authority = [
      { data = "bW9jay1jYQ==" },
    ]
  }
}

mock_resource "aws_s3_bucket" {
  defaults = {
    arn = "arn:aws:s3:::mock-bucket"
    id  = "mock-bucket"
  }
}

mock_resource "aws_ecr_repository" {
  defaults = {
    arn            = "arn:aws:ecr:us-west-2:123456789012:repository/mock"
    repository_url = "123456789012.dkr.ecr.us-west-2.amazonaws.com/genops/mock"
    registry_id    = "123456789012"
  }
}

mock_resource "aws_db_instance" {
  defaults = {
    arn         = "arn:aws:rds:us-west-2:123456789012:db:mock"
    address     = "mock.abcdefghijkl.us-west-2.rds.amazonaws.com"
    endpoint    = "mock.abcdefghijkl.us-west-2.rds.amazonaws.com:5432"
    resource_id = "db-MOCKMOCKMOCKMOCKMOCKMOCK"
    master_user_secret = [
      {
        secret_arn    = "arn:aws:secretsmanager:us-west-2:123456789012:secret:rds!db-mock-AbCdEf"
        kms_key_id    = "arn:aws:kms:us-west-2:123456789012:key/11111111-2222-3333-4444-555555555555"
        secret_status = "active"
      },
    ]
  }
}
