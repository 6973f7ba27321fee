# The daemon's permissions. infra/iam/policy.json.tftpl is the single source of truth: the test
# test/integration/infra/iamPolicy.test.ts renders the same file and checks it against every AWS
# call the code makes.
locals {
  policy_json = templatefile("${path.module}/../iam/policy.json.tftpl", {
    partition                = data.aws_partition.current.partition
    region                   = data.aws_region.current.name
    account_id               = data.aws_caller_identity.current.account_id
    table_name               = var.table_name
    lease_table_name         = local.lease_table_name
    bucket_name              = var.bucket_name
    object_prefix            = local.object_prefix
    kms_key_arn              = local.kms_key_arn
    allow_create_lease_table = var.allow_create_lease_table
  })
}

resource "aws_iam_policy" "daemon" {
  name        = "dynamodb-changelog-${var.table_name}"
  description = "dynamodb-changelog run: read ${var.table_name}'s stream, use lease table ${local.lease_table_name}, write ${local.destination}/${var.table_name}/"
  # jsondecode fails the plan on a template that renders invalid JSON; jsonencode normalises it.
  policy = jsonencode(jsondecode(local.policy_json))
  tags   = var.tags
}

# Optional role for the daemon: EKS IRSA (the service account in infra/k8s/serviceaccount.yaml)
# and/or an ECS task role.
data "aws_iam_policy_document" "trust" {
  count = var.create_role ? 1 : 0

  dynamic "statement" {
    for_each = var.irsa_oidc_provider_arn == null ? [] : [var.irsa_oidc_provider_arn]
    content {
      sid     = "EksServiceAccount"
      actions = ["sts:AssumeRoleWithWebIdentity"]
      principals {
        type        = "Federated"
        identifiers = [statement.value]
      }
      condition {
        test     = "StringEquals"
        variable = "${replace(statement.value, "/^.*:oidc-provider\\//", "")}:sub"
        values   = ["system:serviceaccount:${var.irsa_namespace}:${var.irsa_service_account}"]
      }
      condition {
        test     = "StringEquals"
        variable = "${replace(statement.value, "/^.*:oidc-provider\\//", "")}:aud"
        values   = ["sts.amazonaws.com"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.ecs_task_role ? [1] : []
    content {
      sid     = "EcsTasks"
      actions = ["sts:AssumeRole"]
      principals {
        type        = "Service"
        identifiers = ["ecs-tasks.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [data.aws_caller_identity.current.account_id]
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.irsa_oidc_provider_arn != null || var.ecs_task_role
      error_message = "create_role needs irsa_oidc_provider_arn and/or ecs_task_role = true."
    }
  }
}

resource "aws_iam_role" "daemon" {
  count              = var.create_role ? 1 : 0
  name               = local.role_name
  assume_role_policy = data.aws_iam_policy_document.trust[0].json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "daemon" {
  count      = var.create_role ? 1 : 0
  role       = aws_iam_role.daemon[0].name
  policy_arn = aws_iam_policy.daemon.arn
}
