"""One module per ``glcf`` sub-command; each imports its heavy dependencies inside the command."""
