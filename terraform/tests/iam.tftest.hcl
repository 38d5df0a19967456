# Unit tests of modules/iam and modules/addons (workload identities).

mock_provider "aws" {
  override_during = plan
  source          = "./mocks"
}

variables {
  cluster_name       = "genops-test"
  bucket_arn         = "arn:aws:s3:::genops-test-artifacts"
  bucket_kms_key_arn = "arn:aws:kms:us-west-2:123456789012:key/aaaaaaaa-0000-0000-0000-000000000001"
  bucket_prefixes = {
    pipeline_root = "pipeline-root/"
    mlflow        = "mlflow-artifacts/"
    datasets      = "datasets/"
    tmp           = "tmp/"
  }
  ecr_repository_arns = ["arn:aws:ecr:us-west-2:123456789012:repository/genops/component"]
  db_secret_arn       = "arn:aws:secretsmanager:us-west-2:123456789012:secret:rds!db-test-AbCdEf"
  db_kms_key_arn      = "arn:aws:kms:us-west-2:123456789012:key/aaaaaaaa-0000-0000-0000-000000000002"
  app_secret_arns = [
    "arn:aws:secretsmanager:us-west-2:123456789012:secret:genops-test/db/mlflow-AbCdEf",
    "arn:aws:secretsmanager:us-west-2:123456789012:secret:genops-test/mlflow/pipelines-AbCdEf",
  ]
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

run "workload_roles_are_least_privilege" {
  command = plan

  module {
    source = "../modules/iam"
  }

  assert {
    condition     = toset(keys(aws_iam_role.workload)) == toset(["pipeline_runner", "mlflow", "model_server", "cluster_autoscaler", "external_secrets", "kfp_api", "kfp_ui"])
    error_message = "one role per workload"
  }

  assert {
    condition = alltrue([
      for k, r in aws_iam_role.workload :
      jsondecode(r.assume_role_policy).Statement[0].Principal.Service == "pods.eks.amazonaws.com" &&
      jsondecode(r.assume_role_policy).Statement[0].Condition.StringEquals["aws:RequestTag/kubernetes-service-account"] == var.service_accounts[k].service_account &&
      jsondecode(r.assume_role_policy).Statement[0].Condition.StringEquals["aws:RequestTag/eks-cluster-name"] == "genops-test"
    ])
    error_message = "roles must trust only EKS Pod Identity for their own cluster and service account"
  }

  assert {
    condition = alltrue(flatten([
      for p in aws_iam_role_policy.workload : [
        for s in jsondecode(p.policy).Statement :
        !contains(flatten([s.Action]), "*") && !contains(flatten([s.Action]), "s3:*") && (s.Resource != "*" || alltrue([for a in flatten([s.Action]) : can(regex("^(ecr:GetAuthorizationToken|autoscaling:Describe.*|ec2:Describe.*|ec2:GetInstanceTypesFromInstanceRequirements)$", a))]))
      ]
    ]))
    error_message = "no wildcard actions; Resource \"*\" only for actions that support no resource scoping"
  }

  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.workload["model_server"].policy).Statement :
      length(setintersection(toset(flatten([s.Action])), toset(["s3:PutObject", "s3:DeleteObject", "secretsmanager:GetSecretValue"]))) == 0
    ])
    error_message = "the model server may only read models"
  }

  assert {
    condition = anytrue([
      for s in jsondecode(aws_iam_role_policy.workload["pipeline_runner"].policy).Statement :
      contains(flatten([s.Action]), "s3:PutObject") && toset(flatten([s.Resource])) == toset(["arn:aws:s3:::genops-test-artifacts/pipeline-root/*", "arn:aws:s3:::genops-test-artifacts/mlflow-artifacts/*", "arn:aws:s3:::genops-test-artifacts/tmp/*"])
    ])
    error_message = "the runner writes only under pipeline-root/, mlflow-artifacts/ and tmp/"
  }

  assert {
    condition = alltrue(flatten([
      for k, p in aws_iam_role_policy.workload : [
        for s in jsondecode(p.policy).Statement :
        k == "external_secrets" || length([for a in flatten([s.Action]) : a if startswith(a, "secretsmanager:")]) == 0
      ]
    ]))
    error_message = "no workload role but External Secrets' may read a secret: the runner and MLflow must not read the RDS master secret"
  }

  assert {
    condition = anytrue([
      for s in jsondecode(aws_iam_role_policy.workload["external_secrets"].policy).Statement :
      contains(flatten([s.Action]), "secretsmanager:GetSecretValue") && toset(flatten([s.Resource])) == toset(concat([var.db_secret_arn], var.app_secret_arns))
    ])
    error_message = "External Secrets reads exactly the master and the application secrets"
  }

  assert {
    condition     = aws_eks_pod_identity_association.workload["pipeline_runner"].namespace == "kubeflow" && aws_eks_pod_identity_association.workload["pipeline_runner"].service_account == "genops-pipeline-runner"
    error_message = "the runner role is bound to kubeflow/genops-pipeline-runner, the service account KFP runs genops steps as"
  }

  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.workload["kfp_ui"].policy).Statement :
      length(setintersection(toset(flatten([s.Action])), toset(["s3:PutObject", "s3:DeleteObject"]))) == 0
    ])
    error_message = "the KFP UI only reads artifacts"
  }
}

run "addons_after_nodes" {
  command = plan

  module {
    source = "../modules/addons"
  }

  assert {
    condition     = aws_eks_addon.coredns.addon_name == "coredns" && aws_eks_addon.ebs_csi.addon_name == "aws-ebs-csi-driver"
    error_message = "coredns and the EBS CSI driver are managed add-ons"
  }

  assert {
    condition     = one(aws_eks_addon.ebs_csi.pod_identity_association).service_account == "ebs-csi-controller-sa" && one(aws_eks_addon.ebs_csi.pod_identity_association).role_arn == aws_iam_role.ebs_csi.arn
    error_message = "the EBS CSI controller gets its role through Pod Identity"
  }
}
