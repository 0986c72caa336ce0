"""A module without run_wsgi at all."""
VALUE = 1
