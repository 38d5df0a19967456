variable "name" {
  description = "Name prefix for every network resource (e.g. genops-dev)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters of lowercase letters, digits and hyphens."
  }
}

variable "cluster_name" {
  description = "EKS cluster name, used for the kubernetes.io/cluster/<name> subnet tags that the AWS load balancer controller reads."
  type        = string
}

variable "vpc_cidr" {
  description = "IPv4 CIDR of the VPC, a /16 to /20. Private subnets take the first /19-equivalents, public subnets small blocks near the top."
  type        = string

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(try(split("/", var.vpc_cidr)[1], "0")) >= 16 && tonumber(try(split("/", var.vpc_cidr)[1], "0")) <= 20
    error_message = "vpc_cidr must be a valid IPv4 CIDR with a prefix length between /16 and /20."
  }
}

variable "azs" {
  description = "Availability zones to spread subnets over (2 to 6). One private and one public subnet per zone."
  type        = list(string)

  validation {
    condition     = length(var.azs) >= 2 && length(var.azs) <= 6 && length(distinct(var.azs)) == length(var.azs)
    error_message = "azs must list 2 to 6 distinct availability zones."
  }
}

variable "single_nat_gateway" {
  description = "One shared NAT gateway (cheaper, dev) instead of one per availability zone (resilient, prod)."
  type        = bool
  default     = false
}

variable "flow_log_retention_days" {
  description = "Days to keep VPC flow logs in CloudWatch Logs."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_log_retention_days)
    error_message = "flow_log_retention_days must be one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, ...)."
  }
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}

variable "interface_endpoint_services" {
  description = "AWS services (suffix of com.amazonaws.<region>.) that get an interface VPC endpoint with private DNS in the private subnets."
  type        = list(string)
  default     = ["ecr.api", "ecr.dkr", "sts", "logs", "secretsmanager"]

  validation {
    condition     = length(setsubtract(["ecr.api", "ecr.dkr", "sts", "logs"], var.interface_endpoint_services)) == 0
    error_message = "interface_endpoint_services must include ecr.api, ecr.dkr, sts and logs (image pulls, Pod Identity sessions and logs must not depend on NAT)."
  }
}
