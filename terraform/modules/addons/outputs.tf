output "addon_names" {
  description = "Managed add-ons created by this module."
  value       = sort([aws_eks_addon.coredns.addon_name, aws_eks_addon.ebs_csi.addon_name])
}

output "ebs_csi_role_arn" {
  description = "IAM role of the EBS CSI controller (EKS Pod Identity)."
  value       = aws_iam_role.ebs_csi.arn
}
