"""The pure core of Roadie: deploys, lifecycle, rollout planning (standard library only)."""
