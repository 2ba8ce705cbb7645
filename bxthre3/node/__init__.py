"""The node manager process: RAM and CPU probes, phone manners, the device id, the supervisor of hosts."""
