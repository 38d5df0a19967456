# Tests of the dev root as composed: outputs users rely on, dev defaults, and
# variable validations that must reject bad input before anything is planned.

mock_provider "aws" {
  override_during = plan
  source          = "../../tests/mocks"
}

run "dev_defaults" {
  command = plan

  assert {
    condition     = output.cluster_name == "genops-dev" && output.kubeconfig_command == "aws eks update-kubeconfig --region us-west-2 --name genops-dev --alias genops-dev"
    error_message = "cluster name and kubeconfig command are wrong: ${output.kubeconfig_command}"
  }

  assert {
    condition     = startswith(output.cluster_endpoint, "https://")
    error_message = "the cluster endpoint output must be the API URL"
  }

  assert {
    condition     = output.environment_summary.cluster_endpoint_public_access == false && output.environment_summary.cluster_endpoint_private == true
    error_message = "the Kubernetes API must be private by default"
  }

  assert {
    condition     = output.environment_summary.gpu_min_size == 0 && output.environment_summary.gpu_max_size == 2
    error_message = "the GPU group must scale from zero to gpu_max_size"
  }

  assert {
    condition     = output.gpu_node_selector == { "genops.io/node-pool" = "gpu" } && output.gpu_node_taint == "nvidia.com/gpu=true:NoSchedule"
    error_message = "the GPU node selector and taint are a contract with the pipelines"
  }

  assert {
    condition     = output.gpu_ami_type == "BOTTLEROCKET_x86_64_NVIDIA" && output.nvidia_device_plugin_required == false
    error_message = "dev uses Bottlerocket NVIDIA, which ships the device plugin"
  }

  assert {
    condition     = output.environment_summary.managed_addons == tolist(["aws-ebs-csi-driver", "coredns", "eks-pod-identity-agent", "kube-proxy", "vpc-cni"])
    error_message = "all five managed add-ons must be installed: ${jsonencode(output.environment_summary.managed_addons)}"
  }

  assert {
    condition     = output.environment_summary.nat_gateways == 1 && output.environment_summary.default_security_group_rules == 0
    error_message = "dev shares one NAT gateway and keeps the default security group closed"
  }

  assert {
    condition = (
      output.environment_summary.database.storage_encrypted &&
      !output.environment_summary.database.publicly_accessible &&
      output.environment_summary.database.iam_authentication &&
      !output.environment_summary.database.multi_az &&
      !output.environment_summary.database.deletion_protection
    )
    error_message = "dev database: encrypted, private, IAM auth; single-AZ and deletable: ${jsonencode(output.environment_summary.database)}"
  }

  assert {
    condition     = startswith(output.database_secret_arn, "arn:aws:secretsmanager:") && endswith(output.database_endpoint, ":5432")
    error_message = "database endpoint and secret ARN outputs are wrong"
  }

  assert {
    condition     = toset(keys(output.ecr_repository_urls)) == toset(["genops/component", "genops/train-cuda", "genops/serving", "genops/mlflow"])
    error_message = "ECR URLs must be output for all four repositories"
  }

  assert {
    condition     = output.image_registry == "123456789012.dkr.ecr.us-west-2.amazonaws.com"
    error_message = "image_registry must be the registry host of the repositories: ${output.image_registry}"
  }

  assert {
    condition     = output.artifacts_bucket == "genops-dev-artifacts-123456789012-us-west-2" && output.pipeline_root == "s3://genops-dev-artifacts-123456789012-us-west-2/pipeline-root/"
    error_message = "bucket and pipeline root outputs are wrong"
  }

  assert {
    condition     = toset(keys(output.role_arns)) == toset(["pipeline_runner", "mlflow", "model_server", "cluster_autoscaler", "external_secrets", "kfp_api", "kfp_ui", "ebs_csi", "node"])
    error_message = "every role ARN must be output"
  }

  assert {
    condition     = output.environment_summary.cluster_support_type == "EXTENDED"
    error_message = "the cluster keeps its version until upgraded deliberately (EXTENDED support)"
  }

  assert {
    condition     = output.service_accounts.pipeline_runner == "kubeflow/genops-pipeline-runner" && output.service_accounts.external_secrets == "external-secrets/external-secrets" && output.service_accounts.kfp_api == "kubeflow/ml-pipeline"
    error_message = "Pod Identity must bind the service accounts k8s/platform runs workloads as"
  }

  assert {
    condition     = length(setsubtract([for s in ["s3", "ecr.api", "ecr.dkr", "sts", "logs"] : "com.amazonaws.us-west-2.${s}"], output.vpc_endpoint_services)) == 0
    error_message = "S3, ECR, STS and CloudWatch Logs must have VPC endpoints"
  }

  assert {
    condition     = toset(keys(output.database_app_secret_arns)) == toset(["mlflow", "optuna", "kfp"]) && toset(keys(output.mlflow_user_secret_arns)) == toset(["admin", "pipelines"])
    error_message = "per-application database and MLflow users"
  }
}

run "dev_al2023_gpu_nodes_need_device_plugin" {
  command = plan

  variables {
    gpu_ami_type = "AL2023_x86_64_NVIDIA"
  }

  assert {
    condition     = output.nvidia_device_plugin_required == true
    error_message = "AL2023 NVIDIA nodes need the NVIDIA device plugin from k8s/platform"
  }
}

run "dev_public_endpoint_with_cidrs" {
  command = plan

  variables {
    cluster_endpoint_public_access       = true
    cluster_endpoint_public_access_cidrs = ["203.0.113.10/32"]
  }

  assert {
    condition     = output.environment_summary.cluster_endpoint_public_access == true
    error_message = "public access can be enabled when CIDRs are given"
  }
}

run "rejects_unknown_gpu_instance_family" {
  command = plan

  variables {
    gpu_instance_types = ["x9.large"]
  }

  expect_failures = [var.gpu_instance_types]
}

run "rejects_cpu_instance_as_gpu" {
  command = plan

  variables {
    gpu_instance_types = ["m5.xlarge"]
  }

  expect_failures = [var.gpu_instance_types]
}

run "rejects_retired_gpu_ami" {
  command = plan

  variables {
    gpu_ami_type = "AL2_x86_64_GPU"
  }

  expect_failures = [var.gpu_ami_type]
}

run "rejects_public_endpoint_with_empty_cidr_list" {
  command = plan

  variables {
    cluster_endpoint_public_access       = true
    cluster_endpoint_public_access_cidrs = []
  }

  expect_failures = [var.cluster_endpoint_public_access_cidrs]
}

run "rejects_world_open_api_cidr" {
  command = plan

  variables {
    cluster_endpoint_public_access       = true
    cluster_endpoint_public_access_cidrs = ["0.0.0.0/0"]
  }

  expect_failures = [var.cluster_endpoint_public_access_cidrs]
}

run "rejects_single_availability_zone" {
  command = plan

  variables {
    availability_zones = ["us-west-2a"]
  }

  expect_failures = [var.availability_zones]
}

run "rejects_zone_outside_region" {
  command = plan

  variables {
    availability_zones = ["us-west-2a", "us-east-1b"]
  }

  expect_failures = [var.availability_zones]
}

run "rejects_short_log_retention" {
  command = plan

  variables {
    log_retention_days = 30
  }

  expect_failures = [var.log_retention_days]
}
