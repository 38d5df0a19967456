output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = aws_eks_cluster.this.name
}

output "cluster_arn" {
  description = "ARN of the EKS cluster."
  value       = aws_eks_cluster.this.arn
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_version" {
  description = "Kubernetes version of the control plane."
  value       = aws_eks_cluster.this.version
}

output "cluster_certificate_authority_data" {
  description = "Base64 CA bundle of the API server."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "cluster_security_group_id" {
  description = "Security group EKS created for the control plane and (by default) managed nodes."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "kms_key_arn" {
  description = "KMS key encrypting Kubernetes secrets and control-plane logs."
  value       = aws_kms_key.cluster.arn
}

output "log_group_name" {
  description = "CloudWatch Logs group of the control-plane logs."
  value       = aws_cloudwatch_log_group.cluster.name
}

output "addon_names" {
  description = "Managed add-ons created by this module."
  value       = sort(keys(aws_eks_addon.pre_compute))
}

output "endpoint_public_access" {
  description = "Whether the Kubernetes API endpoint is reachable from the internet (limited to public_access_cidrs)."
  value       = aws_eks_cluster.this.vpc_config[0].endpoint_public_access
}

output "endpoint_private_access" {
  description = "Whether the Kubernetes API endpoint is reachable from inside the VPC."
  value       = aws_eks_cluster.this.vpc_config[0].endpoint_private_access
}

output "support_type" {
  description = "Upgrade policy of the cluster (EXTENDED or STANDARD)."
  value       = aws_eks_cluster.this.upgrade_policy[0].support_type
}
