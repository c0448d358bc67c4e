"""Regrades: grade an assignment again after a new version of its material, as new result revisions."""
