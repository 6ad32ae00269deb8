"""The microVM: guest image, QEMU argv (pure), the machine process and its QMP, the guest
channel. Knows no proxy or editor: it is given a port to forward to and a share to export."""
