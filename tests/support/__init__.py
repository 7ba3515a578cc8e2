"""Test support: real redis-server and gateway processes on ephemeral loopback ports, and a
byte-level SSE reader. Shared by the integration, fault, security and e2e suites."""
