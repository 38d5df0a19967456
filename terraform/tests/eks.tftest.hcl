# Unit tests of modules/eks.

mock_provider "aws" {
  override_during = plan
  source          = "./mocks"
}

variables {
  cluster_name       = "genops-test"
  kubernetes_version = "1.35"
  vpc_id             = "vpc-0123456789abcdef0"
  subnet_ids         = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
}

run "eks_private_by_default" {
  command = plan

  module {
    source = "../modules/eks"
  }

  assert {
    condition     = aws_eks_cluster.this.vpc_config[0].endpoint_public_access == false
    error_message = "the public API endpoint must be off by default"
  }

  assert {
    condition     = aws_eks_cluster.this.vpc_config[0].endpoint_private_access == true
    error_message = "the private API endpoint must be on"
  }

  assert {
    condition     = one(aws_eks_cluster.this.encryption_config).resources == toset(["secrets"]) && one(one(aws_eks_cluster.this.encryption_config).provider).key_arn == aws_kms_key.cluster.arn
    error_message = "Kubernetes secrets must be envelope-encrypted with the module's KMS key"
  }

  assert {
    condition     = aws_kms_key.cluster.enable_key_rotation == true
    error_message = "the cluster KMS key must rotate"
  }

  assert {
    condition     = toset(aws_eks_cluster.this.enabled_cluster_log_types) == toset(["api", "audit", "authenticator", "controllerManager", "scheduler"])
    error_message = "all five control-plane log types must be enabled"
  }

  assert {
    condition     = aws_cloudwatch_log_group.cluster.name == "/aws/eks/genops-test/cluster" && aws_cloudwatch_log_group.cluster.kms_key_id == aws_kms_key.cluster.arn && aws_cloudwatch_log_group.cluster.retention_in_days >= 365
    error_message = "control-plane logs must go to an encrypted log group kept for at least a year"
  }

  assert {
    condition     = aws_eks_cluster.this.access_config[0].authentication_mode == "API"
    error_message = "cluster access must use EKS access entries (authentication_mode = API)"
  }

  assert {
    condition     = toset(keys(aws_eks_addon.pre_compute)) == toset(["vpc-cni", "kube-proxy", "eks-pod-identity-agent"])
    error_message = "vpc-cni, kube-proxy and eks-pod-identity-agent must be managed add-ons"
  }

  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.private_api) == 0 && length(aws_eks_access_entry.admin) == 0
    error_message = "no extra API ingress or admin entries unless asked for"
  }

  assert {
    condition     = aws_eks_cluster.this.upgrade_policy[0].support_type == "EXTENDED" && output.support_type == "EXTENDED"
    error_message = "the cluster must not be upgraded by AWS under a pinned autoscaler: upgrade_policy EXTENDED by default"
  }

  assert {
    condition     = jsondecode(aws_eks_addon.pre_compute["vpc-cni"].configuration_values).enableNetworkPolicy == "true" && jsondecode(aws_eks_addon.pre_compute["vpc-cni"].configuration_values).env.ENABLE_POD_ENI == "true" && jsondecode(aws_eks_addon.pre_compute["vpc-cni"].configuration_values).env.POD_SECURITY_GROUP_ENFORCING_MODE == "standard"
    error_message = "the VPC CNI must enforce NetworkPolicies and support security groups for pods (standard mode)"
  }

  assert {
    condition     = aws_iam_role_policy_attachment.vpc_resource_controller.policy_arn == "arn:aws:iam::aws:policy/AmazonEKSVPCResourceController"
    error_message = "security groups for pods need the VPC resource controller policy on the cluster role"
  }
}

run "eks_rejects_unknown_support_type" {
  command = plan

  module {
    source = "../modules/eks"
  }

  variables {
    support_type = "AUTOMATIC"
  }

  expect_failures = [var.support_type]
}

run "eks_public_endpoint_limited_to_cidrs" {
  command = plan

  module {
    source = "../modules/eks"
  }

  variables {
    endpoint_public_access = true
    public_access_cidrs    = ["203.0.113.10/32"]
    private_access_cidrs   = ["10.99.0.0/16"]
    admin_principal_arns   = ["arn:aws:iam::123456789012:role/platform-admin"]
  }

  assert {
    condition     = aws_eks_cluster.this.vpc_config[0].endpoint_public_access == true && aws_eks_cluster.this.vpc_config[0].public_access_cidrs == toset(["203.0.113.10/32"])
    error_message = "public access must be limited to the given CIDRs"
  }

  assert {
    condition     = aws_vpc_security_group_ingress_rule.private_api["10.99.0.0/16"].from_port == 443
    error_message = "private_access_cidrs must open 443 on the cluster security group"
  }

  assert {
    condition     = aws_eks_access_policy_association.admin["arn:aws:iam::123456789012:role/platform-admin"].policy_arn == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    error_message = "admin principals must get the cluster-admin access policy"
  }
}

run "eks_rejects_public_endpoint_without_cidrs" {
  command = plan

  module {
    source = "../modules/eks"
  }

  variables {
    endpoint_public_access = true
    public_access_cidrs    = []
  }

  expect_failures = [var.public_access_cidrs]
}

run "eks_rejects_world_open_cidr" {
  command = plan

  module {
    source = "../modules/eks"
  }

  variables {
    endpoint_public_access = true
    public_access_cidrs    = ["0.0.0.0/0"]
  }

  expect_failures = [var.public_access_cidrs]
}
