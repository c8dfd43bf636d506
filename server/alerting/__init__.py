"""Alerting: rules that pick incidents, channels that deliver alerts, a dispatcher that retries.

Pure building blocks with no database access; the server records delivery attempts through the
dispatcher's ``record`` callback.
"""
