"""Code that runs inside the VM. Standard library only: nothing here imports sandkit,
because the guest has no sandkit installed, only these files copied into its image."""
