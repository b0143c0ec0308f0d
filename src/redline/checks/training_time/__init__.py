"""Training-time checks (FM02 poisoning, FM10 backdoors) and the helpers only they use."""
