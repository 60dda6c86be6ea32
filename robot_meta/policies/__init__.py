"""robot_meta.policies (see ARCHITECTURE.md)."""
