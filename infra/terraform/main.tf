data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

# The source table: its stream must be on, and its key schema gives the Glue table's typed key columns.
data "aws_dynamodb_table" "source" {
  count = var.check_source_stream ? 1 : 0
  name  = var.table_name

  lifecycle {
    postcondition {
      condition     = self.stream_enabled
      error_message = "The stream of table ${var.table_name} is disabled; enable it (aws dynamodb update-table --table-name ${var.table_name} --stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES)."
    }
  }
}

locals {
  lease_table_name = coalesce(var.lease_table_name, "${var.table_name}-changelog-leases")
  # Keys the daemon writes are <prefix>/<table>/..., or <table>/... without a prefix.
  object_prefix = var.prefix == "" ? "" : "${var.prefix}/"
  destination   = var.prefix == "" ? "s3://${var.bucket_name}" : "s3://${var.bucket_name}/${var.prefix}"
  kms_key_arn   = var.kms_key_arn == null ? "" : var.kms_key_arn
  role_name     = coalesce(var.role_name, "dynamodb-changelog-${var.table_name}")
}
