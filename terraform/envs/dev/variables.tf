# Inputs of the dev environment. Defaults favour cost (single NAT, single-AZ
# database without deletion protection); prod flips them.

variable "project" {
  description = "Project name, first part of every resource name."
  type        = string
  default     = "genops"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.project))
    error_message = "project must be 2-21 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  description = "AWS region."
  type        = string
  default     = "us-west-2"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-west-2."
  }
}

variable "availability_zones" {
  description = "Availability zones (2 to 6) in the region; one private and one public subnet each. Pick zones that offer the GPU instance types."
  type        = list(string)
  default     = ["us-west-2a", "us-west-2b", "us-west-2c"]

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 6
    error_message = "availability_zones must list 2 to 6 zones; EKS and RDS need at least two."
  }

  validation {
    condition     = alltrue([for az in var.availability_zones : startswith(az, var.region)])
    error_message = "every availability zone must belong to var.region."
  }
}

variable "vpc_cidr" {
  description = "IPv4 CIDR of the VPC (/16 to /20)."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(try(split("/", var.vpc_cidr)[1], "0")) >= 16 && tonumber(try(split("/", var.vpc_cidr)[1], "0")) <= 20
    error_message = "vpc_cidr must be a valid IPv4 CIDR between /16 and /20."
  }
}

variable "single_nat_gateway" {
  description = "One shared NAT gateway instead of one per zone."
  type        = bool
  default     = true
}

variable "kubernetes_version" {
  description = "EKS Kubernetes minor version. Check `aws eks describe-cluster-versions` for the versions in standard support."
  type        = string
  default     = "1.35"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.NN (e.g. 1.35)."
  }
}

variable "cluster_support_type" {
  description = "EKS upgrade policy: EXTENDED (default) keeps the Kubernetes version after standard support ends until you upgrade it together with the autoscaler; STANDARD lets AWS upgrade it automatically."
  type        = string
  default     = "EXTENDED"

  validation {
    condition     = contains(["EXTENDED", "STANDARD"], var.cluster_support_type)
    error_message = "cluster_support_type must be EXTENDED or STANDARD."
  }
}

variable "cluster_endpoint_public_access" {
  description = "Expose the Kubernetes API publicly (limited to cluster_endpoint_public_access_cidrs). Off by default."
  type        = bool
  default     = false
}

variable "cluster_endpoint_public_access_cidrs" {
  description = "CIDRs allowed to reach the public API endpoint. Required (non-empty) when cluster_endpoint_public_access is true; 0.0.0.0/0 is refused."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.cluster_endpoint_public_access_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "cluster_endpoint_public_access_cidrs must be valid IPv4 CIDRs other than 0.0.0.0/0."
  }

  validation {
    condition     = !var.cluster_endpoint_public_access || length(var.cluster_endpoint_public_access_cidrs) > 0
    error_message = "cluster_endpoint_public_access_cidrs must not be empty when cluster_endpoint_public_access is true."
  }
}

variable "cluster_endpoint_private_access_cidrs" {
  description = "Extra CIDRs (VPN, bastion) allowed to reach the private API endpoint on 443."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.cluster_endpoint_private_access_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "cluster_endpoint_private_access_cidrs must be valid IPv4 CIDRs other than 0.0.0.0/0."
  }
}

variable "cluster_admin_principal_arns" {
  description = "IAM role/user ARNs that get cluster-admin via EKS access entries (the identity running terraform gets it automatically)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.cluster_admin_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$", a))])
    error_message = "cluster_admin_principal_arns must be IAM role or user ARNs."
  }
}

variable "system_instance_types" {
  description = "Instance types of the system (CPU) node group."
  type        = list(string)
  default     = ["m6i.large"]

  validation {
    condition     = length(var.system_instance_types) > 0
    error_message = "system_instance_types must not be empty."
  }
}

variable "gpu_ami_type" {
  description = "AMI type of the GPU nodes: BOTTLEROCKET_x86_64_NVIDIA (driver and device plugin included) or AL2023_x86_64_NVIDIA (driver included; `make platform` installs the device plugin)."
  type        = string
  default     = "BOTTLEROCKET_x86_64_NVIDIA"

  validation {
    condition     = contains(["BOTTLEROCKET_x86_64_NVIDIA", "AL2023_x86_64_NVIDIA"], var.gpu_ami_type)
    error_message = "gpu_ami_type must be BOTTLEROCKET_x86_64_NVIDIA or AL2023_x86_64_NVIDIA; the AL2 GPU AMIs are retired."
  }
}

variable "gpu_instance_types" {
  description = "GPU instance types of the GPU node group (NVIDIA x86 families: g4dn, g5 and later g families, gr6, p4d/p4de, p5 and later)."
  type        = list(string)
  default     = ["g6.xlarge", "g5.xlarge"]

  validation {
    condition     = length(var.gpu_instance_types) > 0 && alltrue([for t in var.gpu_instance_types : can(regex("^(g4dn|g[5-9][a-z]*|gr[6-9][a-z]*|p4de?|p[5-9][a-z]*(-b[0-9]+)?)\\.(metal|large|[0-9]*xlarge)$", t)) && !can(regex("^g5g\\.", t))])
    error_message = "gpu_instance_types must be non-empty and hold only NVIDIA x86 GPU instance types (g4dn, g5 and later g families incl. g6e/g6f/g7e, gr6, p4d/p4de, p5 and later incl. p5en/p6-b200; not the Arm g5g or the AMD g4ad)."
  }
}

variable "gpu_capacity_type" {
  description = "ON_DEMAND or SPOT for the GPU nodes."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.gpu_capacity_type)
    error_message = "gpu_capacity_type must be ON_DEMAND or SPOT."
  }
}

variable "gpu_max_size" {
  description = "Maximum number of GPU nodes (the group scales from zero)."
  type        = number
  default     = 2

  validation {
    condition     = var.gpu_max_size >= 1 && var.gpu_max_size <= 100
    error_message = "gpu_max_size must be between 1 and 100."
  }
}

variable "gpu_disk_size_gib" {
  description = "Data volume size of GPU nodes in GiB."
  type        = number
  default     = 200

  validation {
    condition     = var.gpu_disk_size_gib >= 50
    error_message = "gpu_disk_size_gib must be at least 50."
  }
}

variable "artifacts_bucket_name" {
  description = "Explicit artifacts bucket name; null derives <project>-<env>-artifacts-<account>-<region>."
  type        = string
  default     = null
}

variable "db_instance_class" {
  description = "RDS instance class of the PostgreSQL database."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_engine_version" {
  description = "PostgreSQL version (major, or major.minor)."
  type        = string
  default     = "16"
}

variable "db_multi_az" {
  description = "Multi-AZ standby for the database (off in dev)."
  type        = bool
  default     = false
}

variable "db_deletion_protection" {
  description = "Deletion protection for the database (off in dev so the environment can be torn down)."
  type        = bool
  default     = false
}

variable "db_backup_retention_days" {
  description = "Days of automated database backups."
  type        = number
  default     = 7

  validation {
    condition     = var.db_backup_retention_days >= 1 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be between 1 and 35."
  }
}

variable "log_retention_days" {
  description = "Retention of control-plane, flow and database logs in days."
  type        = number
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch retention value of at least one year (365, 400, 545, 731, ...)."
  }
}

variable "mlflow_tracking_uri" {
  description = "In-cluster URL of the MLflow tracking server, written into the genops-config ConfigMap."
  type        = string
  default     = "http://mlflow.mlflow.svc.cluster.local:5000"

  validation {
    condition     = can(regex("^https?://", var.mlflow_tracking_uri))
    error_message = "mlflow_tracking_uri must be an http(s) URL."
  }
}

variable "tags" {
  description = "Extra tags on every resource (provider default_tags)."
  type        = map(string)
  default     = {}
}
