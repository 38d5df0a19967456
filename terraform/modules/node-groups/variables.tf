variable "cluster_name" {
  description = "Name of the EKS cluster the node groups join."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes version of the kubelets (kept equal to the control plane)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnet IDs the nodes are placed in."
  type        = list(string)
}

variable "ebs_kms_key_arn" {
  description = "Customer managed KMS key for node volumes. null = the AWS managed aws/ebs key. A customer key must grant the AWSServiceRoleForAutoScaling role kms:CreateGrant, or nodes fail to launch."
  type        = string
  default     = null
}

# --- system node group ------------------------------------------------------

variable "system_ami_type" {
  description = "AMI type of the system (CPU) node group."
  type        = string
  default     = "BOTTLEROCKET_x86_64"

  validation {
    condition     = contains(["BOTTLEROCKET_x86_64", "AL2023_x86_64_STANDARD", "BOTTLEROCKET_ARM_64", "AL2023_ARM_64_STANDARD"], var.system_ami_type)
    error_message = "system_ami_type must be a Bottlerocket or AL2023 AMI type."
  }
}

variable "system_instance_types" {
  description = "Instance types of the system node group (KFP, KServe, MLflow, cluster add-ons)."
  type        = list(string)
  default     = ["m6i.large"]

  validation {
    condition     = length(var.system_instance_types) > 0
    error_message = "system_instance_types must not be empty."
  }
}

variable "system_min_size" {
  description = "Minimum number of system nodes."
  type        = number
  default     = 1
}

variable "system_desired_size" {
  description = "Initial number of system nodes (later managed by the cluster autoscaler)."
  type        = number
  default     = 2
}

variable "system_max_size" {
  description = "Maximum number of system nodes."
  type        = number
  default     = 4
}

variable "system_disk_size_gib" {
  description = "Data volume size of system nodes in GiB."
  type        = number
  default     = 50
}

# --- GPU node group ---------------------------------------------------------

variable "gpu_ami_type" {
  description = "AMI type of the GPU node group. BOTTLEROCKET_x86_64_NVIDIA ships the NVIDIA driver and device plugin; AL2023_x86_64_NVIDIA ships the driver and needs the device plugin DaemonSet (k8s/platform/nvidia-device-plugin)."
  type        = string
  default     = "BOTTLEROCKET_x86_64_NVIDIA"

  validation {
    condition     = contains(["BOTTLEROCKET_x86_64_NVIDIA", "AL2023_x86_64_NVIDIA"], var.gpu_ami_type)
    error_message = "gpu_ami_type must be BOTTLEROCKET_x86_64_NVIDIA or AL2023_x86_64_NVIDIA (the AL2 GPU AMIs are retired)."
  }
}

variable "gpu_instance_types" {
  description = "GPU instance types, tried in order by the managed node group."
  type        = list(string)
  default     = ["g6.xlarge", "g5.xlarge"]

  validation {
    condition     = length(var.gpu_instance_types) > 0 && alltrue([for t in var.gpu_instance_types : can(regex("^(g4dn|g[5-9][a-z]*|gr[6-9][a-z]*|p4de?|p[5-9][a-z]*(-b[0-9]+)?)\\.(metal|large|[0-9]*xlarge)$", t)) && !can(regex("^g5g\\.", t))])
    error_message = "gpu_instance_types must be NVIDIA GPU instance types of an NVIDIA x86 family (g4dn, g5 and later g families incl. g6e/g6f/g7e, gr6, p4d/p4de, p5 and later incl. p5en/p6-b200; not the Arm g5g or the AMD g4ad)."
  }
}

variable "gpu_capacity_type" {
  description = "ON_DEMAND or SPOT for the GPU node group."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.gpu_capacity_type)
    error_message = "gpu_capacity_type must be ON_DEMAND or SPOT."
  }
}

variable "gpu_max_size" {
  description = "Maximum number of GPU nodes. The group starts at and scales back to zero."
  type        = number
  default     = 2

  validation {
    condition     = var.gpu_max_size >= 1 && var.gpu_max_size <= 100
    error_message = "gpu_max_size must be between 1 and 100."
  }
}

variable "gpu_disk_size_gib" {
  description = "Data volume size of GPU nodes in GiB (CUDA images are large)."
  type        = number
  default     = 200

  validation {
    condition     = var.gpu_disk_size_gib >= 50
    error_message = "gpu_disk_size_gib must be at least 50 GiB; CUDA images alone take 10-20 GiB."
  }
}

variable "node_pool_label_key" {
  description = "Node label key the pipelines select on. The Python side uses genops.io/node-pool=gpu."
  type        = string
  default     = "genops.io/node-pool"
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
