"""Offline evaluation: public labelled datasets, metrics and temperature calibration.

Dev-only (``make eval``, ``make bench``); nothing here is imported by the Lambda functions.
"""
