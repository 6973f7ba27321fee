# The lease table exactly as src/coordination/leaseTable.ts creates it with --create-lease-table:
# partition key streamArn (S), sort key leaseKey (S), on-demand capacity. It holds the shard
# leases and checkpoints and the changelog registry (segments, gaps, window state, sealer lease),
# so losing it loses the exactly-once bookkeeping: point-in-time recovery is on and deletion is
# protected.
resource "aws_dynamodb_table" "leases" {
  count = var.create_lease_table ? 1 : 0

  name         = local.lease_table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "streamArn"
  range_key    = "leaseKey"

  attribute {
    name = "streamArn"
    type = "S"
  }

  attribute {
    name = "leaseKey"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  # Encrypted with the AWS managed key aws/dynamodb: its key policy lets principals of the account use
  # it through DynamoDB, so the daemon's policy needs no KMS statement for the table. (A customer
  # managed key would need kms:Decrypt/Encrypt/GenerateDataKey* grants for the daemon's role too.)
  server_side_encryption {
    enabled = true
  }

  deletion_protection_enabled = true

  tags = var.tags
}
