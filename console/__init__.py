"""console: see ../shared/DESIGN.md."""
