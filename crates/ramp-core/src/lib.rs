//! Pure rollout planning (no IO).
