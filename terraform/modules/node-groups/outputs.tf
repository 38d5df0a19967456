output "node_role_arn" {
  description = "IAM role of the worker nodes."
  value       = aws_iam_role.node.arn
}

output "system_node_group_name" {
  description = "Name of the system (CPU) node group."
  value       = aws_eks_node_group.system.node_group_name
}

output "gpu_node_group_name" {
  description = "Name of the GPU node group."
  value       = aws_eks_node_group.gpu.node_group_name
}

output "gpu_ami_type" {
  description = "AMI type of the GPU node group."
  value       = var.gpu_ami_type
}

output "gpu_node_labels" {
  description = "Labels on GPU nodes (the pipelines select genops.io/node-pool=gpu)."
  value       = local.gpu_labels
}

output "gpu_node_taint" {
  description = "Taint on GPU nodes, in kubectl notation."
  value       = "${local.gpu_taint.key}=${local.gpu_taint.value}:NoSchedule"
}

output "nvidia_device_plugin_required" {
  description = "True when the GPU AMI does not ship the NVIDIA device plugin and k8s/platform must install it (AL2023 NVIDIA). Bottlerocket NVIDIA variants ship it."
  value       = !startswith(var.gpu_ami_type, "BOTTLEROCKET")
}

output "gpu_scaling" {
  description = "min/max size of the GPU node group (min is always 0: scale from zero)."
  value = {
    min_size = aws_eks_node_group.gpu.scaling_config[0].min_size
    max_size = aws_eks_node_group.gpu.scaling_config[0].max_size
  }
}
