"""hooks of the Ntropy provider."""
