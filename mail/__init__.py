"""mail: see ../shared/DESIGN.md."""
