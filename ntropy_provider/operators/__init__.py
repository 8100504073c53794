"""operators of the Ntropy provider."""
