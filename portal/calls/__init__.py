"""Calls: authorization, rating at hang-up, the Calls page and the "Test a call" panel."""
