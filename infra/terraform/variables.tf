# Resources for one source table's changelog: the lease table, the bucket (optional), the IAM
# policy the daemon needs (and optionally a role for it), and a Glue table for Athena.
# The provider (region, credentials) is configured by the caller; region and account come from
# data sources.

variable "table_name" {
  description = "Source DynamoDB table. Its stream must be enabled (NEW_AND_OLD_IMAGES recommended). The daemon's CHANGELOG_TABLE."
  type        = string
}

variable "check_source_stream" {
  description = "Read the source table at plan time and fail when its stream is disabled; the Glue table's typed key columns also come from it. Set false to plan before the table exists (then set key_attributes)."
  type        = bool
  default     = true
}

variable "key_attributes" {
  description = "The source table's key attributes (partition key first; type S, N or B), used for the Glue table's typed key columns when check_source_stream is false."
  type        = list(object({ name = string, type = string }))
  default     = []

  validation {
    condition     = alltrue([for a in var.key_attributes : contains(["S", "N", "B"], a.type)])
    error_message = "key_attributes types must be S, N or B."
  }
}

variable "lease_table_name" {
  description = "Lease table (leases and the segment registry). The daemon's CHANGELOG_LEASE_TABLE. Default: <table_name>-changelog-leases."
  type        = string
  default     = null
}

variable "create_lease_table" {
  description = "Create the lease table here. When false, the table must exist or the daemon must create it (allow_create_lease_table)."
  type        = bool
  default     = true
}

variable "allow_create_lease_table" {
  description = "Grant dynamodb:CreateTable/DescribeTable on the lease table, for running the daemon with --create-lease-table. Not needed when Terraform creates the table."
  type        = bool
  default     = false
}

variable "bucket_name" {
  description = "S3 bucket of the changelog (the bucket of CHANGELOG_DESTINATION)."
  type        = string
}

variable "create_bucket" {
  description = "Create and configure the bucket here; false to use an existing bucket (only the policy and Glue table refer to it)."
  type        = bool
  default     = true
}

variable "prefix" {
  description = "Key prefix inside the bucket, without leading or trailing '/' (the path of CHANGELOG_DESTINATION); empty for none."
  type        = string
  default     = "changelog"

  validation {
    condition     = !startswith(var.prefix, "/") && !endswith(var.prefix, "/")
    error_message = "prefix must not start or end with '/'."
  }
}

variable "kms_key_arn" {
  description = "KMS key ARN for SSE-KMS (bucket default encryption and the daemon's CHANGELOG_SSE_KMS_KEY_ID); null for SSE-S3. Must be a key ARN, not an alias."
  type        = string
  default     = null
}

variable "glue_database_name" {
  description = "Glue database for the changelog table; null to create no Glue resources."
  type        = string
  default     = "dynamodb_changelog"
}

variable "glue_table_name" {
  description = "Glue table over the change segments. Default: the source table name, lower case, with '-' and '.' as '_'."
  type        = string
  default     = null
}

variable "glue_sealed_table_name" {
  description = "Glue table over the sealed windows' symlink manifests (exactly once). Default: the glue_table_name plus '_sealed'."
  type        = string
  default     = null
}

variable "partition_projection_range" {
  description = "Athena partition projection range of dt (yyyy-MM-dd or NOW-relative). Start it at the changelog's first day to keep queries without a dt filter cheap."
  type        = string
  default     = "NOW-400DAYS,NOW"
}

variable "create_role" {
  description = "Create an IAM role with the policy attached, trusted by IRSA (irsa_oidc_provider_arn) and/or ECS tasks (ecs_task_role)."
  type        = bool
  default     = false
}

variable "role_name" {
  description = "Name of the role (create_role). Default: dynamodb-changelog-<table_name>."
  type        = string
  default     = null
}

variable "irsa_oidc_provider_arn" {
  description = "EKS cluster OIDC provider ARN (arn:aws:iam::<account>:oidc-provider/oidc.eks.<region>.amazonaws.com/id/<id>) for IRSA; null for none."
  type        = string
  default     = null
}

variable "irsa_namespace" {
  description = "Kubernetes namespace of the service account (IRSA)."
  type        = string
  default     = "dynamodb-changelog"
}

variable "irsa_service_account" {
  description = "Kubernetes service account name (IRSA); infra/k8s/serviceaccount.yaml uses dynamodb-changelog."
  type        = string
  default     = "dynamodb-changelog"
}

variable "ecs_task_role" {
  description = "Let ECS tasks assume the role (use its ARN as the task definition's taskRoleArn)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
