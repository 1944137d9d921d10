"""What the runs table and the compare view show, shared by the CLI and the app."""
