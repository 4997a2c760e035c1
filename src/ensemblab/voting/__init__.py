"""Voting: weighted/plurality label voting, soft voting, box and instance-mask fusion."""
