"""robot_meta.runtime (see ARCHITECTURE.md)."""
