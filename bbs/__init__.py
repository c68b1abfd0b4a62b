"""bbs: see ../shared/DESIGN.md."""
