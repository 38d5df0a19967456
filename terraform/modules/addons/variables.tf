variable "cluster_name" {
  description = "Name of the EKS cluster."
  type        = string
}

variable "addon_versions" {
  description = "Optional pinned versions for coredns and aws-ebs-csi-driver. Missing = the default version for the cluster's Kubernetes version."
  type        = map(string)
  default     = {}
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
