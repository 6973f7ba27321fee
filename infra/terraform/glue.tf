# Two Glue tables over the change segments, for Athena (and other Glue-catalog readers), with the
# same columns and the same dt partition projection (infra/README.md says which to use when).
#
# Layout (src/changelog/layout.ts):
#   <prefix>/<table>/data/dt=YYYY-MM-DD/window=YYYYMMDDTHHMMSSZ/s1-<id>.parquet
#   <prefix>/<table>/symlinks/dt=YYYY-MM-DD/YYYYMMDDTHHMMSSZ.txt   one per sealed window
# Both tables are partitioned by dt only, with partition projection: no crawler, no MSCK REPAIR,
# and a query filtering on dt reads only those days. (window= is not a partition column:
# projecting it would make Athena enumerate every window of every day.)
#
# `segments` reads data/ directly: a dt partition's location holds the window= folders, and Athena
# reads every object under it. That is every committed segment, including those of windows not
# sealed yet, and orphans of failed commits until they are deleted (after --orphan-grace), which
# repeat records of committed segments: each change at least once; de-duplicate by event_id.
#
# `sealed` reads symlinks/ with SymlinkTextInputFormat: each sealed window's symlink manifest lists
# the s3:// URLs of exactly the segments its manifest lists (the sealer writes it before the
# manifest), so it sees the sealed windows' committed changes exactly once, and nothing of windows
# not sealed yet.

locals {
  glue_enabled    = var.glue_database_name != null
  glue_table_name = coalesce(var.glue_table_name, lower(replace(var.table_name, "/[-.]/", "_")))
  data_location   = "s3://${var.bucket_name}/${local.object_prefix}${var.table_name}/data/"
  # The sealed-windows table: the symlink manifests of sealed windows.
  glue_sealed_table_name = coalesce(var.glue_sealed_table_name, "${local.glue_table_name}_sealed")
  symlink_location       = "s3://${var.bucket_name}/${local.object_prefix}${var.table_name}/symlinks/"
  # Partition projection on dt, the same for both tables; only the location template differs.
  dt_projection = {
    "projection.enabled"          = "true"
    "projection.dt.type"          = "date"
    "projection.dt.format"        = "yyyy-MM-dd"
    "projection.dt.range"         = var.partition_projection_range
    "projection.dt.interval"      = "1"
    "projection.dt.interval.unit" = "DAYS"
  }

  # The typed key columns, as src/changelog/arrowBatch.ts writes them: one per key attribute,
  # partition key first; S and N as strings (N keeps its exact decimal text), B as binary. An
  # attribute named like a fixed column gets a key_ prefix (src/changelog/keySchema.ts).
  source_key_attributes = var.check_source_stream ? concat(
    [for a in data.aws_dynamodb_table.source[0].attribute : a if a.name == data.aws_dynamodb_table.source[0].hash_key],
    [for a in data.aws_dynamodb_table.source[0].attribute : a if a.name == data.aws_dynamodb_table.source[0].range_key],
  ) : var.key_attributes
  fixed_columns = ["event_id", "op", "event_time", "sequence_number", "shard_id", "keys", "new_image", "old_image", "size_bytes", "ttl_delete"]
  key_columns = [
    for a in local.source_key_attributes : {
      name    = contains(local.fixed_columns, a.name) ? "key_${a.name}" : a.name
      type    = a.type == "B" ? "binary" : "string"
      comment = "key attribute ${a.name} (${a.type})"
    }
  ]
  segment_columns = concat(
    [
      { name = "event_id", type = "string", comment = "stream record eventID" },
      { name = "op", type = "string", comment = "INSERT, MODIFY or REMOVE" },
      { name = "event_time", type = "timestamp", comment = "ApproximateCreationDateTime (UTC, ms)" },
      { name = "sequence_number", type = "string", comment = "stream sequence number; compare as integers" },
      { name = "shard_id", type = "string", comment = "source shard" },
      { name = "keys", type = "string", comment = "the item's key attributes, DynamoDB JSON" },
      { name = "new_image", type = "string", comment = "item after the change, DynamoDB JSON; null for REMOVE or KEYS_ONLY streams" },
      { name = "old_image", type = "string", comment = "item before the change, DynamoDB JSON; null for INSERT or NEW_IMAGE streams" },
    ],
    local.key_columns,
    [
      { name = "size_bytes", type = "int", comment = "stream record SizeBytes" },
      { name = "ttl_delete", type = "boolean", comment = "REMOVE done by TTL" },
    ],
  )
}

resource "aws_glue_catalog_database" "changelog" {
  count = local.glue_enabled ? 1 : 0
  name  = var.glue_database_name
  tags  = var.tags
}

# The two tables differ only in name, description, location and input/output format; the rest
# (columns, dt partition and projection, Parquet SerDe) is written once, in the one resource below.
locals {
  glue_tables = {
    segments = {
      name          = local.glue_table_name
      description   = "dynamodb-changelog change segments of ${var.table_name}, sealed or not (at least once; the _sealed table reads exactly once)"
      location      = local.data_location
      input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
      output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
    }
    sealed = {
      name        = local.glue_sealed_table_name
      description = "dynamodb-changelog sealed windows of ${var.table_name}: exactly the segments their manifests list, each once (symlink manifests)"
      location    = local.symlink_location
      # The objects under the location are text files of segment URLs; the rows come from the
      # Parquet files they name, read with the Parquet SerDe.
      input_format  = "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat"
      output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
    }
  }
}

resource "aws_glue_catalog_table" "changelog" {
  # A for expression rather than `enabled ? map : {}`: the two branches' object types differ.
  for_each      = { for key, table in local.glue_tables : key => table if local.glue_enabled }
  name          = each.value.name
  database_name = aws_glue_catalog_database.changelog[0].name
  description   = each.value.description
  table_type    = "EXTERNAL_TABLE"

  parameters = merge(local.dt_projection, {
    EXTERNAL                    = "TRUE"
    classification              = "parquet"
    "storage.location.template" = "${each.value.location}dt=$${dt}/"
  })

  partition_keys {
    name    = "dt"
    type    = "string"
    comment = "UTC day of the window (YYYY-MM-DD)"
  }

  storage_descriptor {
    location      = each.value.location
    input_format  = each.value.input_format
    output_format = each.value.output_format

    ser_de_info {
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    }

    dynamic "columns" {
      for_each = local.segment_columns
      content {
        # Glue and Athena column names are lower case; Athena matches Parquet columns by name,
        # case-insensitively.
        name    = lower(columns.value.name)
        type    = columns.value.type
        comment = columns.value.comment
      }
    }
  }
}

# The tables were two resources (count = 0 or 1) before: existing deployments keep them, renamed
# in the state, rather than have them destroyed and created again.
moved {
  from = aws_glue_catalog_table.segments[0]
  to   = aws_glue_catalog_table.changelog["segments"]
}

moved {
  from = aws_glue_catalog_table.sealed[0]
  to   = aws_glue_catalog_table.changelog["sealed"]
}
