"""The host process: the DEALER session with the controller and the device's module cache. No engine, no scheduler."""
