"""sensors of the Ntropy provider."""
