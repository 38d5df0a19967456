# Unit tests of modules/node-groups.

mock_provider "aws" {
  override_during = plan
  source          = "./mocks"
}

variables {
  cluster_name       = "genops-test"
  kubernetes_version = "1.35"
  subnet_ids         = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
}

run "gpu_group_defaults" {
  command = plan

  module {
    source = "../modules/node-groups"
  }

  assert {
    condition     = aws_eks_node_group.gpu.ami_type == "BOTTLEROCKET_x86_64_NVIDIA"
    error_message = "GPU nodes must default to the Bottlerocket NVIDIA AMI"
  }

  assert {
    condition     = aws_eks_node_group.gpu.taint == toset([{ key = "nvidia.com/gpu", value = "true", effect = "NO_SCHEDULE" }])
    error_message = "GPU nodes must carry exactly the taint nvidia.com/gpu=true:NoSchedule"
  }

  assert {
    condition     = aws_eks_node_group.gpu.labels["genops.io/node-pool"] == "gpu" && aws_eks_node_group.gpu.labels["nvidia.com/gpu.present"] == "true"
    error_message = "GPU nodes must be labelled genops.io/node-pool=gpu and nvidia.com/gpu.present=true"
  }

  assert {
    condition     = aws_eks_node_group.gpu.scaling_config[0].min_size == 0 && aws_eks_node_group.gpu.scaling_config[0].desired_size == 0 && aws_eks_node_group.gpu.scaling_config[0].max_size >= 1
    error_message = "the GPU group must start at and scale from zero"
  }

  assert {
    condition     = aws_eks_node_group.gpu.instance_types == tolist(["g6.xlarge", "g5.xlarge"])
    error_message = "GPU instance types must default to g6/g5"
  }

  assert {
    condition     = length(aws_eks_node_group.system.taint) == 0 && aws_eks_node_group.system.labels["genops.io/node-pool"] == "system" && aws_eks_node_group.system.scaling_config[0].min_size >= 1
    error_message = "the system group must be untainted, labelled system and never empty"
  }

  assert {
    condition     = alltrue([for lt in aws_launch_template.this : lt.metadata_options[0].http_tokens == "required" && lt.metadata_options[0].http_put_response_hop_limit == 1])
    error_message = "every node must require IMDSv2 with a hop limit of 1"
  }

  assert {
    condition     = alltrue(flatten([for lt in aws_launch_template.this : [for b in lt.block_device_mappings : b.ebs[0].encrypted == "true"]]))
    error_message = "every node volume must be encrypted"
  }

  assert {
    condition     = [for b in aws_launch_template.this["gpu"].block_device_mappings : b.device_name] == ["/dev/xvda", "/dev/xvdb"] && aws_launch_template.this["gpu"].block_device_mappings[1].ebs[0].volume_size == 200
    error_message = "Bottlerocket GPU nodes need an encrypted OS volume and a 200 GiB encrypted data volume on /dev/xvdb"
  }

  assert {
    condition     = aws_eks_node_group.gpu.launch_template[0].id == aws_launch_template.this["gpu"].id && aws_eks_node_group.system.launch_template[0].id == aws_launch_template.this["system"].id
    error_message = "node groups must use their launch templates"
  }

  assert {
    condition = toset(keys(aws_autoscaling_group_tag.gpu_node_template)) == toset([
      "k8s.io/cluster-autoscaler/node-template/label/genops.io/node-pool",
      "k8s.io/cluster-autoscaler/node-template/label/nvidia.com/gpu.present",
      "k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu",
    ])
    error_message = "the GPU ASG needs cluster-autoscaler node-template tags to scale from zero"
  }

  assert {
    condition     = output.nvidia_device_plugin_required == false
    error_message = "Bottlerocket NVIDIA ships the device plugin; it must not be installed twice"
  }
}

run "gpu_group_al2023" {
  command = plan

  module {
    source = "../modules/node-groups"
  }

  variables {
    gpu_ami_type       = "AL2023_x86_64_NVIDIA"
    gpu_instance_types = ["g6e.2xlarge"]
    gpu_capacity_type  = "SPOT"
  }

  assert {
    condition     = aws_eks_node_group.gpu.ami_type == "AL2023_x86_64_NVIDIA" && aws_eks_node_group.gpu.capacity_type == "SPOT"
    error_message = "AMI type and capacity type must follow the variables"
  }

  assert {
    condition     = [for b in aws_launch_template.this["gpu"].block_device_mappings : b.device_name] == ["/dev/xvda"] && aws_launch_template.this["gpu"].block_device_mappings[0].ebs[0].volume_size == 200
    error_message = "AL2023 GPU nodes have one 200 GiB encrypted root volume"
  }

  assert {
    condition     = output.nvidia_device_plugin_required == true
    error_message = "AL2023 NVIDIA needs the device plugin DaemonSet"
  }
}

run "accepts_current_gpu_families" {
  command = plan

  module {
    source = "../modules/node-groups"
  }

  variables {
    gpu_instance_types = ["g6e.xlarge", "g6f.large", "gr6.4xlarge", "p5en.48xlarge", "p6-b200.48xlarge", "g4dn.xlarge"]
  }

  assert {
    condition     = toset(aws_eks_node_group.gpu.instance_types) == toset(var.gpu_instance_types)
    error_message = "current NVIDIA x86 families must be accepted"
  }
}

run "rejects_arm_and_amd_gpu_families" {
  command = plan

  module {
    source = "../modules/node-groups"
  }

  variables {
    gpu_instance_types = ["g5g.xlarge", "g4ad.xlarge"]
  }

  expect_failures = [var.gpu_instance_types]
}

run "rejects_unknown_gpu_family" {
  command = plan

  module {
    source = "../modules/node-groups"
  }

  variables {
    gpu_instance_types = ["g6.xlarge", "m5.xlarge"]
  }

  expect_failures = [var.gpu_instance_types]
}

run "rejects_retired_al2_gpu_ami" {
  command = plan

  module {
    source = "../modules/node-groups"
  }

  variables {
    gpu_ami_type = "AL2_x86_64_GPU"
  }

  expect_failures = [var.gpu_ami_type]
}
