"""One router per resource; each handler validates, calls matcher, shapes the answer."""
