"""robot_meta.meta (see ARCHITECTURE.md)."""
