variable "cluster_name" {
  description = "Name of the EKS cluster."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,99}$", var.cluster_name))
    error_message = "cluster_name must start with a letter and hold only letters, digits and hyphens (max 100)."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the control plane, e.g. \"1.35\"."
  type        = string

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.NN (e.g. 1.35)."
  }
}

variable "vpc_id" {
  description = "VPC the cluster lives in."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnet IDs for the control-plane ENIs (at least two availability zones)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "EKS needs subnets in at least two availability zones."
  }
}

variable "endpoint_public_access" {
  description = "Expose the Kubernetes API endpoint publicly. Off by default: the API is reachable only from inside the VPC (and from private_access_cidrs)."
  type        = bool
  default     = false
}

variable "public_access_cidrs" {
  description = "CIDRs allowed to reach the public API endpoint. Must be non-empty when endpoint_public_access is true; 0.0.0.0/0 is refused."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.public_access_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "public_access_cidrs must be valid IPv4 CIDRs and must not contain 0.0.0.0/0."
  }

  validation {
    condition     = !var.endpoint_public_access || length(var.public_access_cidrs) > 0
    error_message = "public_access_cidrs must list at least one CIDR when endpoint_public_access is true."
  }
}

variable "private_access_cidrs" {
  description = "Extra CIDRs inside or peered with the VPC (VPN, bastion) allowed to reach the private API endpoint on 443."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.private_access_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "private_access_cidrs must be valid IPv4 CIDRs and must not contain 0.0.0.0/0."
  }
}

variable "admin_principal_arns" {
  description = "IAM role or user ARNs given cluster-admin through EKS access entries (in addition to the identity that creates the cluster)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.admin_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$", a))])
    error_message = "admin_principal_arns must be IAM role or user ARNs."
  }
}

variable "log_retention_days" {
  description = "Days to keep control-plane logs."
  type        = number
  default     = 365
}

variable "addon_versions" {
  description = "Optional pinned versions for the managed add-ons created here (vpc-cni, kube-proxy, eks-pod-identity-agent). null = the default version for the cluster's Kubernetes version."
  type        = map(string)
  default     = {}
}

variable "support_type" {
  description = "EKS upgrade policy at the end of standard support: EXTENDED keeps the version until you upgrade (billed), STANDARD lets AWS upgrade the control plane automatically."
  type        = string
  default     = "EXTENDED"

  validation {
    condition     = contains(["EXTENDED", "STANDARD"], var.support_type)
    error_message = "support_type must be EXTENDED or STANDARD."
  }
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
