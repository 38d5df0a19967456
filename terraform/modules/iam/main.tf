# EKS Pod Identity roles for the workloads, each with a least-privilege inline
# policy built with jsonencode:
# - pipeline_runner (KFP pipeline pods): read/write pipeline-root/ and
#   mlflow-artifacts/, read datasets/, scratch tmp/, pull genops images; no
#   secret at all (credentials reach the steps as Kubernetes Secrets synced by
#   External Secrets, each mounted only into the steps that use it);
# - mlflow (tracking server): read/write/delete mlflow-artifacts/;
# - model_server (KServe InferenceService): read mlflow-artifacts/ only;
# - cluster_autoscaler: describe node groups, resize only ASGs this cluster owns;
# - external_secrets (External Secrets Operator): read exactly the RDS master
#   secret and the application secrets, nothing else;
# - kfp_api (KFP API server): its object store under pipeline-root/;
# - kfp_ui (KFP UI): read pipeline-root/ (artifact previews).

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  bucket  = var.bucket_arn
  p       = var.bucket_prefixes
  objects = { for k, prefix in var.bucket_prefixes : k => "${var.bucket_arn}/${prefix}*" }

  bucket_kms = {
    Sid      = "UseArtifactsKey"
    Effect   = "Allow"
    Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
    Resource = var.bucket_kms_key_arn
  }
  bucket_kms_read = {
    Sid      = "DecryptArtifacts"
    Effect   = "Allow"
    Action   = ["kms:Decrypt"]
    Resource = var.bucket_kms_key_arn
  }
  secret_read = [
    {
      Sid      = "ReadPlatformSecrets"
      Effect   = "Allow"
      Action   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
      Resource = concat([var.db_secret_arn], var.app_secret_arns)
    },
    {
      Sid      = "DecryptDatabaseSecret"
      Effect   = "Allow"
      Action   = ["kms:Decrypt"]
      Resource = var.db_kms_key_arn
      Condition = {
        StringEquals = { "kms:ViaService" = "secretsmanager.${local.region}.amazonaws.com" }
      }
    },
  ]

  base_policies = {
    pipeline_runner = [
      {
        Sid      = "ListOwnPrefixes"
        Effect   = "Allow"
        Action   = "s3:ListBucket"
        Resource = local.bucket
        Condition = {
          StringLike = { "s3:prefix" = [for k in ["pipeline_root", "mlflow", "datasets", "tmp"] : "${local.p[k]}*"] }
        }
      },
      {
        Sid      = "ReadWriteArtifacts"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
        Resource = [local.objects.pipeline_root, local.objects.mlflow, local.objects.tmp]
      },
      {
        Sid      = "DeleteScratch"
        Effect   = "Allow"
        Action   = "s3:DeleteObject"
        Resource = local.objects.tmp
      },
      {
        Sid      = "ReadDatasets"
        Effect   = "Allow"
        Action   = "s3:GetObject"
        Resource = local.objects.datasets
      },
      local.bucket_kms,
      {
        Sid      = "EcrLogin"
        Effect   = "Allow"
        Action   = "ecr:GetAuthorizationToken"
        Resource = "*"
      },
      {
        Sid    = "EcrPullGenopsImages"
        Effect = "Allow"
        Action = [
          "ecr:BatchCheckLayerAvailability",
          "ecr:BatchGetImage",
          "ecr:GetDownloadUrlForLayer",
          "ecr:DescribeImages",
        ]
        Resource = var.ecr_repository_arns
      },
    ]

    mlflow = [
      {
        Sid      = "ListMlflowPrefix"
        Effect   = "Allow"
        Action   = "s3:ListBucket"
        Resource = local.bucket
        Condition = {
          StringLike = { "s3:prefix" = ["${local.p.mlflow}*"] }
        }
      },
      {
        Sid      = "ReadWriteMlflowArtifacts"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
        Resource = local.objects.mlflow
      },
      local.bucket_kms,
    ]

    model_server = [
      {
        Sid      = "ListMlflowPrefix"
        Effect   = "Allow"
        Action   = "s3:ListBucket"
        Resource = local.bucket
        Condition = {
          StringLike = { "s3:prefix" = ["${local.p.mlflow}*"] }
        }
      },
      {
        Sid      = "ReadModels"
        Effect   = "Allow"
        Action   = "s3:GetObject"
        Resource = local.objects.mlflow
      },
      local.bucket_kms_read,
    ]

    cluster_autoscaler = [
      {
        Sid    = "DescribeScalingState"
        Effect = "Allow"
        Action = [
          "autoscaling:DescribeAutoScalingGroups",
          "autoscaling:DescribeAutoScalingInstances",
          "autoscaling:DescribeLaunchConfigurations",
          "autoscaling:DescribeScalingActivities",
          "autoscaling:DescribeTags",
          "ec2:DescribeImages",
          "ec2:DescribeInstanceTypes",
          "ec2:DescribeLaunchTemplateVersions",
          "ec2:GetInstanceTypesFromInstanceRequirements",
        ]
        Resource = "*"
      },
      {
        Sid      = "DescribeOwnNodegroups"
        Effect   = "Allow"
        Action   = "eks:DescribeNodegroup"
        Resource = "arn:${local.partition}:eks:${local.region}:${local.account_id}:nodegroup/${var.cluster_name}/*/*"
      },
      {
        Sid    = "ResizeOwnedGroups"
        Effect = "Allow"
        Action = [
          "autoscaling:SetDesiredCapacity",
          "autoscaling:TerminateInstanceInAutoScalingGroup",
        ]
        Resource = "arn:${local.partition}:autoscaling:${local.region}:${local.account_id}:autoScalingGroup:*:autoScalingGroupName/*"
        Condition = {
          StringEquals = { "aws:ResourceTag/k8s.io/cluster-autoscaler/${var.cluster_name}" = "owned" }
        }
      },
    ]
  }

  kfp_policies = {
    kfp_api = [
      {
        Sid      = "ListPipelineRoot"
        Effect   = "Allow"
        Action   = ["s3:ListBucket", "s3:GetBucketLocation"]
        Resource = local.bucket
      },
      {
        Sid      = "ReadWritePipelineStore"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
        Resource = local.objects.pipeline_root
      },
      local.bucket_kms,
    ]
    kfp_ui = [
      {
        Sid      = "ListPipelineRoot"
        Effect   = "Allow"
        Action   = "s3:ListBucket"
        Resource = local.bucket
        Condition = {
          StringLike = { "s3:prefix" = ["${local.p.pipeline_root}*"] }
        }
      },
      {
        Sid      = "ReadArtifacts"
        Effect   = "Allow"
        Action   = "s3:GetObject"
        Resource = local.objects.pipeline_root
      },
      local.bucket_kms_read,
    ]
  }

  # Only the External Secrets Operator reads secrets; no workload role does.
  all_policy_statements = merge(local.base_policies, local.kfp_policies, {
    external_secrets = local.secret_read
  })
  policy_statements = { for k in keys(var.service_accounts) : k => local.all_policy_statements[k] }
}

resource "aws_iam_role" "workload" {
  for_each = var.service_accounts

  name        = "${var.cluster_name}-${replace(each.key, "_", "-")}"
  description = "EKS Pod Identity role for ${each.value.namespace}/${each.value.service_account}"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "EksPodIdentity"
      Effect    = "Allow"
      Principal = { Service = "pods.eks.amazonaws.com" }
      Action    = ["sts:AssumeRole", "sts:TagSession"]
      # Pod Identity sets these session tags; they pin the role to exactly
      # one service account of one cluster.
      Condition = {
        StringEquals = {
          "aws:SourceAccount"                         = local.account_id
          "aws:RequestTag/eks-cluster-name"           = var.cluster_name
          "aws:RequestTag/kubernetes-namespace"       = each.value.namespace
          "aws:RequestTag/kubernetes-service-account" = each.value.service_account
        }
      }
    }]
  })

  tags = var.tags
}

resource "aws_iam_role_policy" "workload" {
  for_each = var.service_accounts

  name = "least-privilege"
  role = aws_iam_role.workload[each.key].id

  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = local.policy_statements[each.key]
  })
}

resource "aws_eks_pod_identity_association" "workload" {
  for_each = var.service_accounts

  cluster_name    = var.cluster_name
  namespace       = each.value.namespace
  service_account = each.value.service_account
  role_arn        = aws_iam_role.workload[each.key].arn

  tags = var.tags
}
