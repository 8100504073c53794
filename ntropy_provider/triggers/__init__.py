"""triggers of the Ntropy provider."""
