"""The pure core of Roadie: deploys, their lifecycle and rollout planning (standard library only)."""
