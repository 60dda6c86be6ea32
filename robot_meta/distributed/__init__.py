"""robot_meta.distributed (see ARCHITECTURE.md)."""
