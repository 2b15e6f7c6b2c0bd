"""What a switch talks to: authorization, hang-ups, the directory, the dialplan and CDRs."""
