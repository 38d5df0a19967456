# Unit tests of modules/network (run from an env root: see scripts/tf.sh).

mock_provider "aws" {
  override_during = plan
  source          = "./mocks"
}

variables {
  name         = "genops-test"
  cluster_name = "genops-test"
  vpc_cidr     = "10.40.0.0/16"
  azs          = ["us-west-2a", "us-west-2b", "us-west-2c"]
}

run "network_multi_az_with_nat_per_zone" {
  command = plan

  module {
    source = "../modules/network"
  }

  variables {
    single_nat_gateway = false
  }

  assert {
    condition     = length(aws_subnet.private) == 3 && length(aws_subnet.public) == 3
    error_message = "expected one private and one public subnet per availability zone"
  }

  assert {
    condition     = toset(aws_subnet.private[*].availability_zone) == toset(var.azs)
    error_message = "private subnets must cover every availability zone"
  }

  assert {
    condition     = length(aws_nat_gateway.this) == 3
    error_message = "single_nat_gateway = false must create one NAT gateway per zone"
  }

  assert {
    condition     = alltrue([for s in aws_subnet.public : s.map_public_ip_on_launch == false])
    error_message = "public subnets must not auto-assign public IPs"
  }

  assert {
    condition     = alltrue([for s in aws_subnet.public : s.tags["kubernetes.io/role/elb"] == "1" && s.tags["kubernetes.io/cluster/genops-test"] == "shared"])
    error_message = "public subnets need the kubernetes.io/role/elb and cluster tags for internet-facing load balancers"
  }

  assert {
    condition     = alltrue([for s in aws_subnet.private : s.tags["kubernetes.io/role/internal-elb"] == "1" && s.tags["kubernetes.io/cluster/genops-test"] == "shared"])
    error_message = "private subnets need the kubernetes.io/role/internal-elb and cluster tags"
  }

  assert {
    condition     = length(setintersection(toset(aws_subnet.private[*].cidr_block), toset(aws_subnet.public[*].cidr_block))) == 0 && alltrue([for c in concat(aws_subnet.private[*].cidr_block, aws_subnet.public[*].cidr_block) : cidrsubnet(c, 0, 0) == c])
    error_message = "subnet CIDRs must be distinct and valid"
  }

  assert {
    condition     = length(aws_default_security_group.this.ingress) == 0 && length(aws_default_security_group.this.egress) == 0
    error_message = "the default security group must be closed (no ingress, no egress)"
  }

  assert {
    condition     = aws_flow_log.this.traffic_type == "ALL" && aws_flow_log.this.log_destination_type == "cloud-watch-logs"
    error_message = "VPC flow logs must capture ALL traffic into CloudWatch Logs"
  }

  assert {
    condition     = aws_cloudwatch_log_group.flow_logs.kms_key_id == aws_kms_key.flow_logs.arn && aws_kms_key.flow_logs.enable_key_rotation
    error_message = "flow logs must be encrypted with a rotating KMS key"
  }
}

run "network_vpc_endpoints" {
  command = plan

  module {
    source = "../modules/network"
  }

  assert {
    condition     = aws_vpc_endpoint.s3.vpc_endpoint_type == "Gateway" && aws_vpc_endpoint.s3.service_name == "com.amazonaws.us-west-2.s3" && toset(aws_vpc_endpoint.s3.route_table_ids) == toset(aws_route_table.private[*].id)
    error_message = "S3 must be reached through a gateway endpoint on every private route table"
  }

  assert {
    condition     = toset([for e in aws_vpc_endpoint.interface : e.service_name]) == toset([for s in ["ecr.api", "ecr.dkr", "sts", "logs", "secretsmanager"] : "com.amazonaws.us-west-2.${s}"])
    error_message = "interface endpoints for ECR (api, dkr), STS, CloudWatch Logs and Secrets Manager"
  }

  assert {
    condition     = alltrue([for e in aws_vpc_endpoint.interface : e.vpc_endpoint_type == "Interface" && e.private_dns_enabled && toset(e.subnet_ids) == toset(aws_subnet.private[*].id) && toset(e.security_group_ids) == toset([aws_security_group.endpoints.id])])
    error_message = "interface endpoints must use private DNS in every private subnet"
  }

  assert {
    condition     = aws_vpc_security_group_ingress_rule.endpoints_https.cidr_ipv4 == "10.40.0.0/16" && aws_vpc_security_group_ingress_rule.endpoints_https.from_port == 443 && aws_vpc_security_group_ingress_rule.endpoints_https.to_port == 443
    error_message = "the endpoints admit only HTTPS from the VPC"
  }

  assert {
    condition     = contains(output.vpc_endpoint_services, "com.amazonaws.us-west-2.ecr.dkr") && contains(output.vpc_endpoint_services, "com.amazonaws.us-west-2.s3")
    error_message = "the endpoint services output lists every endpoint"
  }
}

run "network_rejects_endpoints_without_ecr" {
  command = plan

  module {
    source = "../modules/network"
  }

  variables {
    interface_endpoint_services = ["sts", "logs"]
  }

  expect_failures = [var.interface_endpoint_services]
}

run "network_single_nat" {
  command = plan

  module {
    source = "../modules/network"
  }

  variables {
    single_nat_gateway = true
  }

  assert {
    condition     = length(aws_nat_gateway.this) == 1 && length(aws_route.private_nat) == 3
    error_message = "single_nat_gateway = true must create one NAT gateway shared by all private route tables"
  }
}

run "network_rejects_single_az" {
  command = plan

  module {
    source = "../modules/network"
  }

  variables {
    azs = ["us-west-2a"]
  }

  expect_failures = [var.azs]
}
