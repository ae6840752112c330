"""The tamper-evident audit log (docs/design.md §6, docs/audit.md): RFC 6962 Merkle hashing
(``merkle``, pure), entries (``entry``), signed checkpoints (``checkpoint``), SQL
(``store``), group commit for audited reads (``group_commit``) and the service
servers use (``service.AuditLog``)."""
