"""Reading transactions from where they live (lists, files, object storage) and writing rejected rows."""
