"""The wire: message kinds, CurveZMQ keys, socket set-up, LAN discovery, liveness. Used by every process."""
