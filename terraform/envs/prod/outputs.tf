output "region" {
  description = "AWS region of the environment."
  value       = var.region
}

output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = module.eks.cluster_name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint (private unless public access was enabled)."
  value       = module.eks.cluster_endpoint
}

output "kubernetes_version" {
  description = "Kubernetes version of the cluster."
  value       = module.eks.cluster_version
}

output "kubeconfig_command" {
  description = "Command that writes a kubeconfig entry for the cluster."
  value       = "aws eks update-kubeconfig --region ${var.region} --name ${module.eks.cluster_name} --alias ${module.eks.cluster_name}"
}

output "artifacts_bucket" {
  description = "S3 bucket for pipeline and MLflow artifacts."
  value       = module.storage.bucket_name
}

output "pipeline_root" {
  description = "KFP pipeline root (kfp-launcher defaultPipelineRoot)."
  value       = "s3://${module.storage.bucket_name}/${module.storage.prefixes.pipeline_root}"
}

output "mlflow_artifacts_destination" {
  description = "S3 location for MLflow artifacts (mlflow server --artifacts-destination)."
  value       = "s3://${module.storage.bucket_name}/${module.storage.prefixes.mlflow}"
}

output "datasets_uri" {
  description = "S3 prefix for input datasets (read-only to pipelines)."
  value       = "s3://${module.storage.bucket_name}/${module.storage.prefixes.datasets}"
}

output "ecr_repository_urls" {
  description = "ECR repository URLs by name (genops/component, genops/train-cuda, genops/serving, genops/mlflow)."
  value       = module.registry.repository_urls
}

output "image_registry" {
  description = "ECR registry host; images are <image_registry>/genops/<kind>:<tag> (GENOPS_IMAGE_REGISTRY)."
  value       = module.registry.registry_url
}

output "database_endpoint" {
  description = "PostgreSQL endpoint (host:port), reachable from inside the cluster only."
  value       = module.database.endpoint
}

output "database_address" {
  description = "PostgreSQL host name."
  value       = module.database.address
}

output "database_port" {
  description = "PostgreSQL port."
  value       = module.database.port
}

output "database_name" {
  description = "Database of the MLflow backend store (Optuna uses the `optuna` database on the same instance)."
  value       = module.database.db_name
}

output "database_username" {
  description = "Master user of the database (used only by the bootstrap Job that creates the application users)."
  value       = module.database.master_username
}

output "database_secret_arn" {
  description = "Secrets Manager secret with the database credentials (managed and rotated by RDS)."
  value       = module.database.master_user_secret_arn
}

output "database_app_secret_arns" {
  description = "Secrets Manager secret of each application's database user (mlflow, optuna, kfp), synced by External Secrets."
  value       = module.app_secrets.database_secret_arns
}

output "mlflow_user_secret_arns" {
  description = "Secrets Manager secret of each MLflow basic-auth user (admin, pipelines)."
  value       = module.app_secrets.mlflow_secret_arns
}

output "database_client_security_group_id" {
  description = "The only security group RDS admits; k8s/platform attaches it to the pods that hold database credentials (SecurityGroupPolicy)."
  value       = module.database.client_security_group_id
}

output "cluster_security_group_id" {
  description = "EKS cluster security group (nodes and pods); listed next to the client group in SecurityGroupPolicies."
  value       = module.eks.cluster_security_group_id
}

output "vpc_cidr" {
  description = "IPv4 CIDR of the VPC (NetworkPolicies allow the database and webhooks from it)."
  value       = module.network.vpc_cidr
}

output "vpc_endpoint_services" {
  description = "AWS services reached through VPC endpoints instead of NAT."
  value       = module.network.vpc_endpoint_services
}

output "role_arns" {
  description = "IAM role ARNs bound by EKS Pod Identity: pipeline_runner, mlflow, model_server, cluster_autoscaler, external_secrets, kfp_api, kfp_ui, plus ebs_csi and node."
  value = merge(module.iam.role_arns, {
    ebs_csi = module.addons.ebs_csi_role_arn
    node    = module.node_groups.node_role_arn
  })
}

output "service_accounts" {
  description = "namespace/service account bound to each workload role."
  value       = module.iam.service_accounts
}

output "gpu_node_selector" {
  description = "Node selector of GPU workloads."
  value       = { "genops.io/node-pool" = "gpu" }
}

output "gpu_node_taint" {
  description = "Taint of GPU nodes; GPU pods need a matching toleration."
  value       = module.node_groups.gpu_node_taint
}

output "gpu_ami_type" {
  description = "AMI type of the GPU nodes."
  value       = module.node_groups.gpu_ami_type
}

output "nvidia_device_plugin_required" {
  description = "Whether `make platform` must install the NVIDIA device plugin DaemonSet (false for Bottlerocket NVIDIA, which ships it)."
  value       = module.node_groups.nvidia_device_plugin_required
}

output "mlflow_tracking_uri" {
  description = "In-cluster MLflow tracking URI."
  value       = var.mlflow_tracking_uri
}

output "environment_summary" {
  description = "The protection and sizing choices of this environment, as planned."
  value = {
    environment                    = local.environment
    nat_gateways                   = module.network.nat_gateway_count
    default_security_group_rules   = module.network.default_security_group_rule_count
    cluster_endpoint_public_access = module.eks.endpoint_public_access
    cluster_endpoint_private       = module.eks.endpoint_private_access
    gpu_min_size                   = module.node_groups.gpu_scaling.min_size
    gpu_max_size                   = module.node_groups.gpu_scaling.max_size
    database                       = module.database.settings
    managed_addons                 = sort(concat(module.eks.addon_names, module.addons.addon_names))
    cluster_support_type           = module.eks.support_type
  }
}
