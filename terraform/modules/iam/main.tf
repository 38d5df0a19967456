# EKS Pod Identity roles for the workloads, each with a least-privilege inline
# policy built with jsonencode:
# - pipeline_runner (KFP pipeline pods): read/write pipeline-root/ and
#   mlflow-artifacts/, read datasets/, scratch tmp/, pull genops images, read
#   the database secret (Optuna storage);
# - mlflow (tracking server): read/write/delete mlflow-artifacts/, read the
#   database secret (backend store);
# - model_server (KServe InferenceService): read mlflow-artifacts/ only;
# - cluster_autoscaler: describe node groups, resize only ASGs this cluster owns.

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
      Sid      = "ReadDatabaseSecret"
      Effect   = "Allow"
      Action   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
      Resource = var.db_secret_arn
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

  # The runner (Optuna storage) and MLflow (backend store) read the DB secret.
  policy_statements = {
    pipeline_runner    = concat(local.base_policies.pipeline_runner, local.secret_read)
    mlflow             = concat(local.base_policies.mlflow, local.secret_read)
    model_server       = local.base_policies.model_server
    cluster_autoscaler = local.base_policies.cluster_autoscaler
  }
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
