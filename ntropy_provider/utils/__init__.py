"""Small helpers shared by the operators, sensor and trigger."""
