"""The hub's domain logic; handlers call these, these call storage."""
