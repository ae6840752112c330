"""The node's domain logic; the CLI and handlers call these, these call storage."""
