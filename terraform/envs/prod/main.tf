# genops prod environment: the same composition as ../dev with stricter
# defaults (NAT per zone, Multi-AZ database with deletion protection, longer
# backups and retention) enforced by variable validations.

locals {
  environment  = "prod"
  name         = "${var.project}-${local.environment}"
  cluster_name = local.name

  # Workload identities: namespace/service account => IAM role (Pod Identity).
  # k8s/platform creates these namespaces and service accounts (pipeline pods run as
  # genops-pipeline-runner: the KFP API server's default runner is patched to it); the
  # upstream installs create the KFP and External Secrets ones.
  service_accounts = {
    pipeline_runner    = { namespace = "kubeflow", service_account = "genops-pipeline-runner" }
    mlflow             = { namespace = "mlflow", service_account = "mlflow" }
    model_server       = { namespace = "genops-serving", service_account = "genops-model-server" }
    cluster_autoscaler = { namespace = "kube-system", service_account = "cluster-autoscaler" }
    external_secrets   = { namespace = "external-secrets", service_account = "external-secrets" }
    kfp_api            = { namespace = "kubeflow", service_account = "ml-pipeline" }
    kfp_ui             = { namespace = "kubeflow", service_account = "ml-pipeline-ui" }
  }
}

module "network" {
  source = "../../modules/network"

  name                    = local.name
  cluster_name            = local.cluster_name
  vpc_cidr                = var.vpc_cidr
  azs                     = var.availability_zones
  single_nat_gateway      = var.single_nat_gateway
  flow_log_retention_days = var.log_retention_days
}

module "eks" {
  source = "../../modules/eks"

  cluster_name           = local.cluster_name
  kubernetes_version     = var.kubernetes_version
  vpc_id                 = module.network.vpc_id
  subnet_ids             = module.network.private_subnet_ids
  endpoint_public_access = var.cluster_endpoint_public_access
  public_access_cidrs    = var.cluster_endpoint_public_access_cidrs
  private_access_cidrs   = var.cluster_endpoint_private_access_cidrs
  admin_principal_arns   = var.cluster_admin_principal_arns
  log_retention_days     = var.log_retention_days
  support_type           = var.cluster_support_type
}

module "node_groups" {
  source = "../../modules/node-groups"

  cluster_name          = module.eks.cluster_name
  kubernetes_version    = module.eks.cluster_version
  subnet_ids            = module.network.private_subnet_ids
  system_instance_types = var.system_instance_types
  system_min_size       = 2
  system_desired_size   = 3
  system_max_size       = 6
  gpu_ami_type          = var.gpu_ami_type
  gpu_instance_types    = var.gpu_instance_types
  gpu_capacity_type     = var.gpu_capacity_type
  gpu_max_size          = var.gpu_max_size
  gpu_disk_size_gib     = var.gpu_disk_size_gib

  # Nodes join only once the CNI and kube-proxy add-ons exist.
  depends_on = [module.eks]
}

module "addons" {
  source = "../../modules/addons"

  cluster_name = module.eks.cluster_name

  depends_on = [module.node_groups]
}

module "storage" {
  source = "../../modules/storage"

  name                          = local.name
  bucket_name                   = var.artifacts_bucket_name
  force_destroy                 = false
  pipeline_root_expiration_days = 365
  access_log_expiration_days    = var.log_retention_days
}

module "registry" {
  source = "../../modules/registry"

  name = local.name
}

module "database" {
  source = "../../modules/database"

  name       = local.name
  vpc_id     = module.network.vpc_id
  subnet_ids = module.network.private_subnet_ids
  # Only the database client security group (pods with database credentials) gets in.
  instance_class        = var.db_instance_class
  engine_version        = var.db_engine_version
  multi_az              = var.db_multi_az
  deletion_protection   = var.db_deletion_protection
  skip_final_snapshot   = !var.db_deletion_protection
  backup_retention_days = var.db_backup_retention_days
  log_retention_days    = var.log_retention_days
}

module "app_secrets" {
  source = "../../modules/app-secrets"

  name          = local.name
  database_host = module.database.address
  database_port = module.database.port
  kms_key_arn   = module.database.kms_key_arn
}

module "iam" {
  source = "../../modules/iam"

  cluster_name        = module.eks.cluster_name
  bucket_arn          = module.storage.bucket_arn
  bucket_kms_key_arn  = module.storage.kms_key_arn
  bucket_prefixes     = module.storage.prefixes
  ecr_repository_arns = values(module.registry.repository_arns)
  db_secret_arn       = module.database.master_user_secret_arn
  app_secret_arns     = concat(values(module.app_secrets.database_secret_arns), values(module.app_secrets.mlflow_secret_arns))
  db_kms_key_arn      = module.database.kms_key_arn
  service_accounts    = local.service_accounts
}
