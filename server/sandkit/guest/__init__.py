"""Code that runs inside the VM. Standard library only: nothing here imports the rest of
sandkit, because the guest has no sandkit installed, only these modules copied into its
image (under an empty __init__.py of its own: this one is not copied). The modules import
each other relatively (`from .wire import ...`)."""
