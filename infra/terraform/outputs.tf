output "policy_arn" {
  description = "The daemon's IAM policy; attach it to the role the workers run as."
  value       = aws_iam_policy.daemon.arn
}

output "policy_json" {
  description = "The rendered policy document (infra/iam/policy.json.tftpl)."
  value       = aws_iam_policy.daemon.policy
}

output "role_arn" {
  description = "The created role (create_role): the service account's eks.amazonaws.com/role-arn, or the ECS taskRoleArn."
  value       = var.create_role ? aws_iam_role.daemon[0].arn : null
}

output "lease_table_name" {
  description = "CHANGELOG_LEASE_TABLE"
  value       = local.lease_table_name
}

output "lease_table_arn" {
  value = var.create_lease_table ? aws_dynamodb_table.leases[0].arn : null
}

output "destination" {
  description = "CHANGELOG_DESTINATION"
  value       = local.destination
}

output "glue_table" {
  description = "<database>.<table> for Athena: every committed segment, at least once (data/)."
  value       = local.glue_enabled ? "${aws_glue_catalog_database.changelog[0].name}.${aws_glue_catalog_table.changelog["segments"].name}" : null
}

output "glue_sealed_table" {
  description = "<database>.<table> for Athena: the sealed windows' segments, exactly once (symlinks/)."
  value       = local.glue_enabled ? "${aws_glue_catalog_database.changelog[0].name}.${aws_glue_catalog_table.changelog["sealed"].name}" : null
}

output "daemon_environment" {
  description = "The CHANGELOG_* settings that must match these resources (for infra/k8s/configmap.yaml or the ECS task definition)."
  value = merge(
    {
      CHANGELOG_TABLE       = var.table_name
      CHANGELOG_DESTINATION = local.destination
      CHANGELOG_LEASE_TABLE = local.lease_table_name
      AWS_REGION            = data.aws_region.current.name
    },
    var.kms_key_arn == null ? {} : { CHANGELOG_SSE_KMS_KEY_ID = var.kms_key_arn },
  )
}
