"""Other notebook agents, run by `bench/tasks.py --peer NAME` on the same tasks, with the same
model and the same checkers, to compare solve rates: each in an environment of its own, talking
to the model through an endpoint served here."""
