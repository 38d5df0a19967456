# EKS control plane: secrets envelope-encrypted with a customer managed KMS
# key (rotation on), every control-plane log type shipped to an encrypted log
# group, private API endpoint (public access off unless explicitly allowed for
# given CIDRs), access entries instead of the aws-auth ConfigMap, and the
# managed add-ons that must exist before nodes join (vpc-cni, kube-proxy,
# eks-pod-identity-agent). coredns and the EBS CSI driver need running nodes
# and are created by the addons module after the node groups.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id     = data.aws_caller_identity.current.account_id
  region         = data.aws_region.current.name
  partition      = data.aws_partition.current.partition
  log_group_name = "/aws/eks/${var.cluster_name}/cluster"

  control_plane_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  pre_compute_addons = {
    "vpc-cni" = {
      # Network policies are enforced by the VPC CNI's eBPF agent (k8s/platform renders a
      # default-deny policy per genops namespace). Security groups for pods (ENABLE_POD_ENI)
      # give only the database clients the security group RDS admits; "standard" mode keeps
      # NetworkPolicies in force for those pods, and TCP early demux off keeps their kubelet
      # probes working.
      configuration_values = jsonencode({
        enableNetworkPolicy = "true"
        env = {
          ENABLE_POD_ENI                    = "true"
          POD_SECURITY_GROUP_ENFORCING_MODE = "standard"
        }
        init = {
          env = { DISABLE_TCP_EARLY_DEMUX = "true" }
        }
      })
    }
    "kube-proxy"             = { configuration_values = null }
    "eks-pod-identity-agent" = { configuration_values = null }
  }
}

# ---------------------------------------------------------------------------
# KMS key: Kubernetes secrets encryption and control-plane log encryption.
# ---------------------------------------------------------------------------

resource "aws_kms_key" "cluster" {
  description             = "${var.cluster_name} EKS secrets and control-plane logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsUse"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action = [
          "kms:Encrypt*",
          "kms:Decrypt*",
          "kms:ReEncrypt*",
          "kms:GenerateDataKey*",
          "kms:Describe*",
        ]
        Resource = "*"
        Condition = {
          ArnEquals = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.log_group_name}"
          }
        }
      },
    ]
  })

  tags = var.tags
}

resource "aws_kms_alias" "cluster" {
  name          = "alias/${var.cluster_name}-eks"
  target_key_id = aws_kms_key.cluster.key_id
}

resource "aws_cloudwatch_log_group" "cluster" {
  # EKS writes to exactly this name; creating it first lets us set retention
  # and encryption instead of getting an unencrypted never-expiring group.
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.cluster.arn

  tags = var.tags
}

# ---------------------------------------------------------------------------
# Cluster IAM role.
# ---------------------------------------------------------------------------

resource "aws_iam_role" "cluster" {
  name = "${var.cluster_name}-cluster"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "eks.amazonaws.com" }
      Action    = ["sts:AssumeRole", "sts:TagSession"]
    }]
  })

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "cluster" {
  role       = aws_iam_role.cluster.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonEKSClusterPolicy"
}

# Security groups for pods: the VPC resource controller manages the pods' branch ENIs.
resource "aws_iam_role_policy_attachment" "vpc_resource_controller" {
  role       = aws_iam_role.cluster.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonEKSVPCResourceController"
}

resource "aws_iam_role_policy" "cluster_encryption" {
  name = "secrets-encryption"
  role = aws_iam_role.cluster.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "UseClusterKey"
      Effect   = "Allow"
      Action   = ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"]
      Resource = aws_kms_key.cluster.arn
    }]
  })
}

# ---------------------------------------------------------------------------
# The cluster.
# ---------------------------------------------------------------------------

resource "aws_eks_cluster" "this" {
  name     = var.cluster_name
  version  = var.kubernetes_version
  role_arn = aws_iam_role.cluster.arn

  enabled_cluster_log_types = local.control_plane_log_types

  # Managed add-ons below replace the self-managed defaults.
  bootstrap_self_managed_addons = false

  vpc_config {
    subnet_ids              = var.subnet_ids
    endpoint_private_access = true
    endpoint_public_access  = var.endpoint_public_access
    # When public access is off the API ignores this list; the validation on
    # the variable makes sure it is never 0.0.0.0/0.
    public_access_cidrs = var.endpoint_public_access ? var.public_access_cidrs : null
  }

  encryption_config {
    resources = ["secrets"]
    provider {
      key_arn = aws_kms_key.cluster.arn
    }
  }

  access_config {
    authentication_mode                         = "API"
    bootstrap_cluster_creator_admin_permissions = true
  }

  upgrade_policy {
    # EXTENDED (default): at the end of standard support the cluster stays on its version
    # (extended support is billed) until someone upgrades it deliberately, together with the
    # version-matched Cluster Autoscaler and the add-ons. STANDARD would let AWS upgrade the
    # control plane on its own schedule under a pinned autoscaler.
    support_type = var.support_type
  }

  tags = var.tags

  depends_on = [
    aws_iam_role_policy_attachment.cluster,
    aws_iam_role_policy_attachment.vpc_resource_controller,
    aws_iam_role_policy.cluster_encryption,
    aws_cloudwatch_log_group.cluster,
  ]
}

resource "aws_vpc_security_group_ingress_rule" "private_api" {
  for_each = toset(var.private_access_cidrs)

  security_group_id = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
  description       = "Kubernetes API from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value

  tags = var.tags
}

# ---------------------------------------------------------------------------
# Cluster administrators (access entries).
# ---------------------------------------------------------------------------

resource "aws_eks_access_entry" "admin" {
  for_each = toset(var.admin_principal_arns)

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = each.value
  type          = "STANDARD"

  tags = var.tags
}

resource "aws_eks_access_policy_association" "admin" {
  for_each = toset(var.admin_principal_arns)

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = each.value
  policy_arn    = "arn:${local.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"

  access_scope {
    type = "cluster"
  }

  depends_on = [aws_eks_access_entry.admin]
}

# ---------------------------------------------------------------------------
# Add-ons that nodes need in order to become Ready.
# ---------------------------------------------------------------------------

resource "aws_eks_addon" "pre_compute" {
  for_each = local.pre_compute_addons

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = each.key
  addon_version               = lookup(var.addon_versions, each.key, null)
  configuration_values        = each.value.configuration_values
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"

  tags = var.tags
}
