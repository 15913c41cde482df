"""Small tools for scanpy workflows."""
# Each line below imports one module's public functions.
