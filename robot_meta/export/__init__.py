"""robot_meta.export (see ARCHITECTURE.md)."""
