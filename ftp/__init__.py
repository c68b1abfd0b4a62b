"""ftp: see ../shared/DESIGN.md."""
