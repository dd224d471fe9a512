"""Consumers of bourse.events and of the queues behind it: the application logic of the
recorder and settlement Lambdas (functions/*/app.py stay thin and call into here)."""
