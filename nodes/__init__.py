"""nodes: see ../shared/DESIGN.md."""
