"""NLU: the FAQ catalogue, Rasa training data built from it, and the Rasa client."""
