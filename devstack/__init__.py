"""The embedded local stack: moto server, provisioning, host agent, demo and serve drivers."""
