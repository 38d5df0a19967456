# Two managed node groups:
# - system: small CPU group for KFP, KServe, MLflow and cluster add-ons;
# - gpu: NVIDIA AMI, tainted nvidia.com/gpu=true:NoSchedule, labelled
#   genops.io/node-pool=gpu and nvidia.com/gpu.present=true, min size 0 so it
#   scales from (and back to) zero. The cluster autoscaler learns labels and
#   taints of an empty group from the ASG tags below.
# Both use launch templates that require IMDSv2 with a hop limit of 1 (pods
# cannot reach the node's instance role; they use EKS Pod Identity instead)
# and encrypted EBS volumes.

data "aws_partition" "current" {}

locals {
  partition = data.aws_partition.current.partition

  gpu_labels = {
    (var.node_pool_label_key) = "gpu"
    "nvidia.com/gpu.present"  = "true"
  }
  gpu_taint = {
    key    = "nvidia.com/gpu"
    value  = "true"
    effect = "NO_SCHEDULE"
  }
  system_labels = {
    (var.node_pool_label_key) = "system"
  }

  # Bottlerocket keeps the OS on /dev/xvda and containers/images on /dev/xvdb;
  # AL2023 has a single root volume /dev/xvda.
  pools = {
    system = {
      ami_type  = var.system_ami_type
      disk_size = var.system_disk_size_gib
    }
    gpu = {
      ami_type  = var.gpu_ami_type
      disk_size = var.gpu_disk_size_gib
    }
  }
  block_devices = {
    for pool, cfg in local.pools : pool => (
      startswith(cfg.ami_type, "BOTTLEROCKET") ? [
        { device_name = "/dev/xvda", volume_size = null },
        { device_name = "/dev/xvdb", volume_size = cfg.disk_size },
        ] : [
        { device_name = "/dev/xvda", volume_size = cfg.disk_size },
      ]
    )
  }

  # Cluster autoscaler scale-from-zero hints for the GPU group.
  gpu_asg_tags = merge(
    { for k, v in local.gpu_labels : "k8s.io/cluster-autoscaler/node-template/label/${k}" => v },
    { "k8s.io/cluster-autoscaler/node-template/taint/${local.gpu_taint.key}" = "${local.gpu_taint.value}:NoSchedule" },
  )
}

# ---------------------------------------------------------------------------
# Node IAM role.
# ---------------------------------------------------------------------------

resource "aws_iam_role" "node" {
  name = "${var.cluster_name}-node"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset([
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    # Pull-only (no list/describe) is enough for kubelet, including the
    # AWS-owned registries that serve the EKS add-on images.
    "AmazonEC2ContainerRegistryPullOnly",
  ])

  role       = aws_iam_role.node.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

# ---------------------------------------------------------------------------
# Launch templates.
# ---------------------------------------------------------------------------

resource "aws_launch_template" "this" {
  for_each = local.pools

  name_prefix            = "${var.cluster_name}-${each.key}-"
  description            = "${var.cluster_name} ${each.key} nodes: IMDSv2 only, encrypted volumes"
  update_default_version = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  dynamic "block_device_mappings" {
    for_each = local.block_devices[each.key]
    content {
      device_name = block_device_mappings.value.device_name
      ebs {
        encrypted             = true
        kms_key_id            = var.ebs_kms_key_arn
        volume_type           = "gp3"
        volume_size           = block_device_mappings.value.volume_size
        delete_on_termination = true
      }
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.cluster_name}-${each.key}" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(var.tags, { Name = "${var.cluster_name}-${each.key}" })
  }

  tags = var.tags
}

# ---------------------------------------------------------------------------
# Node groups.
# ---------------------------------------------------------------------------

resource "aws_eks_node_group" "system" {
  cluster_name    = var.cluster_name
  node_group_name = "${var.cluster_name}-system"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = var.subnet_ids
  version         = var.kubernetes_version

  ami_type       = var.system_ami_type
  capacity_type  = "ON_DEMAND"
  instance_types = var.system_instance_types

  scaling_config {
    min_size     = var.system_min_size
    desired_size = var.system_desired_size
    max_size     = var.system_max_size
  }

  update_config {
    max_unavailable = 1
  }

  node_repair_config {
    enabled = true
  }

  launch_template {
    id      = aws_launch_template.this["system"].id
    version = aws_launch_template.this["system"].latest_version
  }

  labels = local.system_labels

  tags = var.tags

  lifecycle {
    # The cluster autoscaler owns desired_size after creation.
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

resource "aws_eks_node_group" "gpu" {
  cluster_name    = var.cluster_name
  node_group_name = "${var.cluster_name}-gpu"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = var.subnet_ids
  version         = var.kubernetes_version

  ami_type       = var.gpu_ami_type
  capacity_type  = var.gpu_capacity_type
  instance_types = var.gpu_instance_types

  scaling_config {
    min_size     = 0
    desired_size = 0
    max_size     = var.gpu_max_size
  }

  update_config {
    max_unavailable = 1
  }

  node_repair_config {
    enabled = true
  }

  launch_template {
    id      = aws_launch_template.this["gpu"].id
    version = aws_launch_template.this["gpu"].latest_version
  }

  labels = local.gpu_labels

  taint {
    key    = local.gpu_taint.key
    value  = local.gpu_taint.value
    effect = local.gpu_taint.effect
  }

  tags = var.tags

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

resource "aws_autoscaling_group_tag" "gpu_node_template" {
  for_each = local.gpu_asg_tags

  autoscaling_group_name = aws_eks_node_group.gpu.resources[0].autoscaling_groups[0].name

  tag {
    key                 = each.key
    value               = each.value
    propagate_at_launch = false
  }
}
