"""The demo: a believable business for people trying the portal (`make demo`)."""
