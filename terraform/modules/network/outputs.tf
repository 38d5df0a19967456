output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "CIDR block of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "private_subnet_ids" {
  description = "Private subnet IDs, one per availability zone (nodes, database, internal load balancers)."
  value       = aws_subnet.private[*].id
}

output "public_subnet_ids" {
  description = "Public subnet IDs, one per availability zone (NAT gateways, internet-facing load balancers)."
  value       = aws_subnet.public[*].id
}

output "nat_gateway_count" {
  description = "Number of NAT gateways created."
  value       = local.nat_count
}

output "flow_log_group_name" {
  description = "CloudWatch Logs group holding the VPC flow logs."
  value       = aws_cloudwatch_log_group.flow_logs.name
}

output "default_security_group_rule_count" {
  description = "Rules left on the VPC's default security group (always 0: it is closed)."
  value       = length(aws_default_security_group.this.ingress) + length(aws_default_security_group.this.egress)
}

output "vpc_endpoint_services" {
  description = "Service names with a VPC endpoint (S3 gateway + interface endpoints)."
  value       = sort(concat([aws_vpc_endpoint.s3.service_name], [for e in aws_vpc_endpoint.interface : e.service_name]))
}
