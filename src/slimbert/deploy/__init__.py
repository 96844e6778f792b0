"""Deployment: the Lambda / Cloud Functions package, local emulators, invoke and predict."""
