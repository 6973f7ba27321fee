# The changelog bucket (create_bucket = false to use an existing one, configured alike).

resource "aws_s3_bucket" "changelog" {
  count  = var.create_bucket ? 1 : 0
  bucket = var.bucket_name
  tags   = var.tags
}

resource "aws_s3_bucket_ownership_controls" "changelog" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.changelog[0].id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "changelog" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.changelog[0].id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# SSE-S3, or SSE-KMS with the given key (with an S3 Bucket Key, so KMS is called per bucket key,
# not per object). Objects the daemon writes with CHANGELOG_SSE_KMS_KEY_ID use that key either way.
resource "aws_s3_bucket_server_side_encryption_configuration" "changelog" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.changelog[0].id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = var.kms_key_arn != null
  }
}

# Versioning on. The daemon never overwrites an object (create-only writes with If-None-Match) and
# never deletes a manifest (its policy does not allow it), so versions cost nothing in normal
# operation; they are an undo for anyone else's mistaken overwrite or delete of sealed data.
# Deleted orphan segments and probes linger as noncurrent versions until the lifecycle rule below
# expires them.
resource "aws_s3_bucket_versioning" "changelog" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.changelog[0].id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "changelog" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.changelog[0].id

  # Segments above 16 MiB are multipart uploads; a worker killed mid-upload leaves parts that are
  # billed but invisible. The daemon aborts failed uploads itself; this catches the killed ones.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    expiration {
      expired_object_delete_marker = true
    }
  }

  depends_on = [aws_s3_bucket_versioning.changelog]
}

data "aws_iam_policy_document" "bucket" {
  count = var.create_bucket ? 1 : 0

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.changelog[0].arn,
      "${aws_s3_bucket.changelog[0].arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "changelog" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.changelog[0].id
  policy = data.aws_iam_policy_document.bucket[0].json

  depends_on = [aws_s3_bucket_public_access_block.changelog]
}
