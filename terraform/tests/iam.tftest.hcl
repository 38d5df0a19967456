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
}

run "workload_roles_are_least_privilege" {
  command = plan

  module {
    source = "../modules/iam"
  }

  assert {
    condition     = toset(keys(aws_iam_role.workload)) == toset(["pipeline_runner", "mlflow", "model_server", "cluster_autoscaler"])
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
    condition = alltrue([
      for k in ["pipeline_runner", "mlflow"] : anytrue([
        for s in jsondecode(aws_iam_role_policy.workload[k].policy).Statement :
        contains(flatten([s.Action]), "secretsmanager:GetSecretValue") && s.Resource == var.db_secret_arn
      ])
    ])
    error_message = "the runner and MLflow read exactly the database secret"
  }

  assert {
    condition     = aws_eks_pod_identity_association.workload["pipeline_runner"].namespace == "kubeflow" && aws_eks_pod_identity_association.workload["pipeline_runner"].service_account == "pipeline-runner"
    error_message = "the runner role is bound to kubeflow/pipeline-runner"
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
